"""The one barrier-vs-capacity figure, drawn for the HTML report and for the dashboard."""

from __future__ import annotations

import base64
import re

from ionscreen.screening.plots import barrier_capacity_figure, barrier_capacity_plot, tier_family
from ionscreen.workflows.dashboard import PLOT_SIZE, Dashboard

PNG = b"\x89PNG\r\n\x1a\n"

ROWS = [
    {"formula": "TiS2", "barrier": 0.45, "capacity_mAh_g": 240.0, "barrier_tier": "BVSE E1D",
     "pareto": True, "sustainability_score": 0.7, "rank": 1},
    {"formula": "V2O5", "barrier": 0.52, "capacity_mAh_g": 280.0,
     "barrier_tier": "BVFF CI-NEB (softBV Morse)", "pareto": True, "sustainability_score": None,
     "rank": 2},
    {"formula": "MnO2", "barrier": 0.9, "capacity_mAh_g": 300.0,
     "barrier_tier": "MLIP CI-NEB (CHGNet 0.3.0)", "pareto": False, "sustainability_score": 0.4,
     "rank": 3},
    {"formula": "MoO3", "barrier": 0.6, "capacity_mAh_g": None, "barrier_tier": "BVSE E1D",
     "pareto": False, "sustainability_score": 0.5, "rank": 4},
]


def _columns(rows):
    return ([r["formula"] for r in rows], [r["barrier"] for r in rows],
            [r["capacity_mAh_g"] for r in rows], [r["barrier_tier"] for r in rows],
            [r["pareto"] for r in rows], [r["sustainability_score"] for r in rows])


def test_figure_has_tier_markers_legend_and_pareto_labels():
    fig = barrier_capacity_plot("Mg", *_columns(ROWS))
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["barrier from BVSE", "barrier from BVFF", "barrier from MLIP",
                      "Pareto front (barrier, capacity, sustainability)"]
    markers = [h.get_marker() for h in ax.get_legend().legend_handles]
    assert markers[:3] == ["o", "s", "^"]
    assert ax.get_title() == "Mg: barrier vs capacity (3 hosts)"  # MoO3 has no capacity
    assert sorted(t.get_text() for t in ax.texts) == ["TiS2", "V2O5"]  # the Pareto front
    assert len(fig.axes) == 2  # the sustainability colour bar
    assert tier_family("something else") == "other"


def _hosts():
    from test_rank_export import make_row

    from ionscreen.screening.rank import rank

    bvff = {"barrier": 0.52, "converged": True, "calculator": "BVFF softBV", "tier": "BVFF",
            "status": "converged"}
    return rank([make_row("m1", "TiS2", e1d=0.45, cap=240, proto="TiS2", neb={**bvff, "barrier": 0.40}),
                 make_row("m3", "V2O5", e1d=0.7, cap=280, proto="V2O5", neb=bvff),
                 make_row("m2", "MnO2", e1d=0.9, cap=300, proto="MnO2-beta", neb={**bvff, "barrier": 0.8}),
                 make_row("m6", "MoO3", e1d=0.6, cap=None, proto="MoO3", neb={**bvff, "barrier": 0.55})],
                "Mg")


def _host_columns(hosts):
    return ([h.record.formula for h in hosts], [h.barrier for h in hosts],
            [h.capacity_mAh_g for h in hosts], [h.barrier_tier for h in hosts],
            [h.pareto for h in hosts], [h.sustainability_score for h in hosts])


def test_report_and_dashboard_draw_the_same_figure(tmp_path):
    from ionscreen.screening.report import _scatter

    hosts = _hosts()  # ranked hosts: one tier (the funnel), the BVFF NEB here
    assert {tier_family(h.barrier_tier) for h in hosts} == {"BVFF"}
    html = _scatter("Mg", hosts)
    report_png = base64.b64decode(re.search(r"base64,([A-Za-z0-9+/=]+)", html).group(1))
    with_capacity = [h for h in hosts if h.capacity_mAh_g is not None]
    assert report_png == barrier_capacity_figure("Mg", *_host_columns(with_capacity))
    assert "1 ranked host(s) without a capacity are not shown" in html
    dash = Dashboard(tmp_path)
    dash._ranked = {"Mg": hosts}  # what _rank keeps: the ranked hosts per ion
    dash_png = dash.plot_png("Mg")
    assert report_png.startswith(PNG) and dash_png.startswith(PNG)
    assert dash_png == barrier_capacity_figure("Mg", *_host_columns(hosts), figsize=PLOT_SIZE)
    assert dash.plot_png("Ca") is None
