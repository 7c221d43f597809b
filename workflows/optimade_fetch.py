"""Candidates from OPTIMADE databases, fetched page by page through the result store.

Each page of a query is one job of the ``optimade`` step (:func:`optimade_page_step`): its
input names the provider, the filter and the page's URL; its result holds the page's entries
(the fields of :data:`~ionscreen.structures.optimade.RESPONSE_FIELDS`) and the link to the next
page. The fetch stage follows those links (:func:`next_page`), so every page is committed to
the store as it arrives:

* a repeated or resumed screen finds every page done and fetches nothing again;
* an interrupted fetch (the server went away, the network, a kill) has its last page stored
  failed with the reason, and the next run fetches from there on (the fetch stage always
  retries its failed pages);
* ``--max`` stops the chain once that many structures of a provider are stored.

The ``candidate`` stage then makes one job per entry and working ion
(:func:`candidate_docs_from_pages`): an entry the pipeline cannot use fails alone, with its
reason, and the rest go on. Pages are fetched with the ``optimade`` package's client
(:class:`optimade.client.OptimadeClient`: a provider's own error message for a bad filter,
retries on HTTP 429 with the provider's requested delay, at most :data:`MAX_ATTEMPTS` times).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import Any
from urllib.parse import urlencode

from ionscreen.structures.optimade import (
    RESPONSE_FIELDS,
    OptimadeError,
    resolve_provider,
    slim_entry,
)

from .store import JobRecord

#: Seconds to wait for a provider (connect and each read).
TIMEOUT = 60.0
#: The OPTIMADE API major version in the URLs.
API = "v1"


def first_page(word: str, filter: str, page_size: int = 0) -> dict[str, Any]:
    """The ``optimade`` job input of a query's first page (``word``: a provider's short name
    or base URL; raises :class:`OptimadeError` for an unknown name). ``page_size`` 0: the
    provider's own (a ``page_limit`` above its maximum is refused, with the maximum named)."""
    name, base = resolve_provider(word)
    params = {"response_fields": ",".join(RESPONSE_FIELDS)}
    if page_size > 0:
        params["page_limit"] = str(int(page_size))
    if filter.strip():
        params = {"filter": filter.strip(), **params}
    url = f"{base}/{API}/structures?{urlencode(params)}"
    return {"provider": name, "base_url": base, "filter": filter.strip(), "query": url,
            "page": 0, "before": 0, "url": url}


def next_page(doc: Mapping[str, Any], result: Mapping[str, Any],
              max_entries: int) -> dict[str, Any] | None:
    """The input of the page after ``doc`` (whose result is ``result``), or None when the
    query is complete or ``max_entries`` structures are stored."""
    got = int(doc.get("before", 0)) + len(result.get("entries") or ())
    if not result.get("next") or got >= max_entries or not result.get("entries"):
        return None
    return {**doc, "page": int(doc["page"]) + 1, "before": got, "url": str(result["next"])}


#: tries of one page before it fails (HTTP 429 included); a failed page resumes on the next run
MAX_ATTEMPTS = 3


@cache
def _client_class() -> type:
    """The ``optimade`` client with its retries of HTTP 429 bounded. In optimade 1.5 the
    client resets its attempt count at each retry, so a provider that keeps answering 429
    would hold the fetch (and the store's process) forever."""
    from optimade.client import OptimadeClient

    class BoundedClient(OptimadeClient):  # type: ignore[misc]
        too_many = 0

        def _handle_response(self, response: Any, _task: Any) -> tuple[dict[str, Any], str]:
            if response.status_code == 429:
                self.too_many += 1
                if self.too_many >= self.max_attempts:
                    raise RuntimeError(f"429 - {response.url}: Too Many Requests after "
                                       f"{self.too_many} tries")
            return super()._handle_response(response, _task)

    return BoundedClient


def optimade_page_step(doc: dict[str, Any]) -> dict[str, Any]:
    """``{"provider", "base_url", "filter", "url", "page", "before"}`` -> ``{"entries": [...],
    "next": URL or None, "data_returned": n}`` of that one page. Raises
    :class:`OptimadeError` with the provider's own message (a bad filter) or the network's."""
    base = str(doc["base_url"])
    # a number, not 0 (= None in the client): with a provider that leaves out the optional
    # meta.data_available, the client compares its request count with this cap
    client = _client_class()(base_urls=[base], max_results_per_provider=10**9, use_async=False,
                             silent=True, http_timeout=TIMEOUT, max_attempts=MAX_ATTEMPTS)
    res = client.get_one("structures", str(doc.get("filter") or ""), base, paginate=False,
                         override_url=str(doc["url"]))[base]
    where = f"{doc['provider']} page {int(doc['page']) + 1}"
    if res.errors and not res.data:
        raise OptimadeError(f"{where}: {_clean(res.errors)}")
    nxt = (res.links or {}).get("next")
    if isinstance(nxt, Mapping):
        nxt = nxt.get("href")
    entries = [slim_entry(e) for e in res.data if e.get("type", "structures") == "structures"]
    missing = sum(e["id"] in ("", "None") for e in entries)
    if missing:
        raise OptimadeError(f"{where}: {missing} of {len(entries)} entries have no id, so their "
                            "provenance cannot be recorded; the provider's response is not "
                            "OPTIMADE-conformant")
    return {"entries": entries, "next": nxt or None,
            "data_returned": (res.meta or {}).get("data_returned")}


def _clean(errors: Sequence[Any]) -> str:
    """The client's error strings as one message that says what to do: an HTTP 4xx is the
    provider refusing the query (its own words: fix the filter or the page size), anything
    else is the network or the provider being away (run again: the fetch resumes)."""
    import re

    out = []
    for e in errors:
        text = re.sub(r"^\w+(Error|Exception|Timeout): ", "", str(e).strip())
        m = re.match(r"^(\d{3}) - (\S+): (.*)$", text, re.S)
        if m and m.group(1) == "404":
            out.append(f"no OPTIMADE structures endpoint at {m.group(2)} (HTTP 404) — check the "
                       "base URL given to --optimade")
        elif m and m.group(1) in ("401", "403") and "page_limit" not in m.group(3):
            out.append(f"the provider refused access (HTTP {m.group(1)}): "
                       f"{m.group(3).strip()[:300]} — it may need an account or a key")
        elif m and m.group(1).startswith("4") and m.group(1) != "429":
            out.append(f"the provider refused the query (HTTP {m.group(1)}): {m.group(3).strip()}"
                       " — change --filter (or --page-size) and run again (a new filter needs "
                       "a new --out, or --force)")
        elif m:
            out.append(f"the provider answered HTTP {m.group(1)}: {m.group(3).strip()[:300]} — "
                       "run again later to resume the fetch")
        else:
            if "Connection refused" in text or "Failed to establish" in text:
                text = "connection refused"
            out.append(f"the provider could not be reached ({text[:300]}) — run again to "
                       "resume the fetch")
    return "; ".join(out)


def pages_in_order(records: Iterable[JobRecord]) -> dict[str, list[JobRecord]]:
    """Page records grouped per query (the first page's URL: provider, filter and page size),
    first page first."""
    out: dict[str, list[JobRecord]] = {}
    for rec in records:
        doc = rec.input or {}
        out.setdefault(str(doc.get("query", "")), []).append(rec)
    for lst in out.values():
        lst.sort(key=lambda r: int((r.input or {}).get("page", 0)))
    return out


def pages_of(records: Iterable[JobRecord], queries: Sequence[Mapping[str, Any]]
             ) -> list[JobRecord]:
    """The page records of ``queries`` (first-page documents) among ``records``: a store may
    also hold the pages of another query (``ionscreen candidates`` with another filter)."""
    keys = {q["query"] for q in queries}
    return [r for r in records if (r.input or {}).get("query") in keys]


def fetched_entries(records: Iterable[JobRecord], queries: Sequence[Mapping[str, Any]],
                    max_entries: int) -> list[tuple[str, str, dict[str, Any]]]:
    """``(provider, base URL, entry)`` of the stored pages of ``queries`` (first-page
    documents), in page order, at most ``max_entries`` per query, each entry id once."""
    by_query = pages_in_order(records)
    out = []
    for q in queries:
        seen: set[str] = set()
        for rec in by_query.get(q["query"], []):
            for entry in rec.result.get("entries") or ():
                if len(seen) >= max_entries:
                    break
                if entry["id"] not in seen:
                    seen.add(entry["id"])
                    out.append((q["provider"], q["base_url"], entry))
    return out


def fetch_summary(records: Iterable[JobRecord]) -> list[str]:
    """One line per query of a store: structures stored, pages, and whether it is complete,
    stopped by ``--max`` or interrupted (with the reason)."""
    recs = list(records)
    done = pages_in_order(r for r in recs if r.state == "done")
    bad = pages_in_order(r for r in recs if r.state == "failed")
    lines = []
    for key in dict.fromkeys([*done, *bad]):
        pages = done.get(key, [])
        n = sum(len(r.result.get("entries") or ()) for r in pages)
        last = pages[-1].result if pages else {}
        name = ((pages or bad[key])[0].input or {}).get("provider", key)
        total = (pages[0].result.get("data_returned") if pages else None)
        state = ("complete" if pages and not last.get("next") else "stopped at --max"
                 if pages else "not started")
        failed = [r for r in bad.get(key, []) if int(r.input.get("page", 0)) >= len(pages)]
        if failed:
            state = f"stopped: {failed[-1].reason}"
        lines.append(f"OPTIMADE {name}: {n} structures in {len(pages)} page(s)"
                     + (f" of {total} matching" if total is not None else "") + f" ({state})")
    return lines


__all__ = ["fetch_summary", "fetched_entries", "first_page", "next_page",
           "optimade_page_step", "pages_in_order", "pages_of"]
