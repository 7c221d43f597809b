"""``ionscreen dashboard``: a live web page for a running or finished screen."""

from __future__ import annotations

import sys

import click

from .cli_common import weights_option


@click.command()
@click.option("--store", "store_spec", required=True,
              help="A screen's output folder or its ionscreen.sqlite (local engine), a "
                   "mongodb://host/db?collection=name URI or a launchpad file (FireWorks engine).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Any other than loopback needs --user and --password.")
@click.option("--port", type=int, default=8050, show_default=True,
              help="Port (0: pick a free one).")
@click.option("--user", default=None, help="Basic-auth user name.")
@click.option("--password", default=None, envvar="IONSCREEN_DASHBOARD_PASSWORD",
              help="Basic-auth password (or the IONSCREEN_DASHBOARD_PASSWORD variable, which "
                   "keeps it out of the process list).")
@click.option("--webgui-url", default=None,
              help="URL of FireWorks' `lpad webgui` (workflow graphs), linked from the page.")
@click.option("--exports", "exports_dir", type=click.Path(file_okay=False), default=None,
              help="Folder with the exports (default: the SQLite store's folder).")
@click.option("--top", type=int, default=5, show_default=True, help="Top candidates shown per ion.")
@weights_option
def dashboard(store_spec, host, port, user, password, webgui_url, exports_dir, top, weights):  # type: ignore[no-untyped-def]
    """Serve a live page of a screen: progress by step and state, throughput and ETA, failures
    with reasons, the top candidates per ion with plots, and links to the exports.

    Safe while a run writes to the store (read-only access). Listens on 127.0.0.1: from your
    desktop, tunnel with `ssh -L 8050:127.0.0.1:8050 <login node>` and open
    http://127.0.0.1:8050/.
    """
    from .dashboard import DashboardError
    from .dashboard_server import serve

    try:
        server = serve(store_spec, host=host, port=port, user=user, password=password, top=top,
                       webgui_url=webgui_url, exports_dir=exports_dir, weights=weights)
    except DashboardError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo(f"ionscreen dashboard of {server.dashboard.description}", err=True)
    pending = server.dashboard.waiting_for
    if pending is not None:
        click.echo(f"note: no store at {pending} yet; the page waits for a screen to create it "
                   "(check the path if you expected a run there)", err=True)
    click.echo(f"serving on {server.url}  (Ctrl-C to stop)", err=True)
    click.echo(server.url)  # stdout: the URL alone, for scripts
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
