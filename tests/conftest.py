"""Session set-up shared by every test module."""

import os

# `ionscreen screen` runs the CHGNet voltage of every promoted host when the mlip extra is
# installed (it is, for the tests). The screens of the tests are about the other stages and
# their golden lists are without a voltage, so they say `--voltage none` through the option's
# environment variable; subprocesses inherit it. The tests of the voltage stage unset it.
os.environ["IONSCREEN_VOLTAGE"] = "none"
