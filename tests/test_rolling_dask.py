"""RollingLassoModel(scheduler=...): blocks of dates on real Dask clusters on 127.0.0.1 — a
LocalCluster of two worker processes, and a ``dask scheduler`` with two ``dask worker``
processes started and stopped by PID — give the serial answers, failures and policies; the
scheduler's address or Client, progress, cancelling, and the errors a user can meet."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

distributed = pytest.importorskip("distributed")

from rolling_helpers import assert_same_rolling  # noqa: E402

from xl_factorlasso import LassoModel, RollingLassoModel, make_factor_panel  # noqa: E402
from xl_factorlasso.core._base import clone  # noqa: E402
from xl_factorlasso.core.rolling import _distributed  # noqa: E402

T, M, N = 260, 5, 12
WARM_ATOL = 1e-8  # both certified to a relative duality gap of 1e-8 (as test_rolling_parallel)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def panel():
    return make_factor_panel(T, M, N, seed=3, freq="W-FRI", start="2015-01-02")


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                       host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                       scheduler_port=0)
    with cluster, distributed.Client(cluster, set_as_default=False) as c:
        pids = list(c.run(os.getpid).values())
        assert len(pids) == 2 and os.getpid() not in pids
        yield c
    _assert_gone(pids)  # closing the cluster stopped its worker processes


def _model(panel, config="lasso"):
    lam = 0.05 * LassoModel().lambda_max(panel.x, panel.y)
    if config == "hcgl":
        return LassoModel(model_type="HCGL", reg_lambda=lam, l1_weight=0.1, span=52)
    return LassoModel(reg_lambda=lam, factors_beta_loading_signs=panel.signs,
                      factors_beta_prior=panel.prior)


def _scheduler_tasks(client) -> int:
    return client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))


def _wait_cluster_empty(client):
    """The fit released everything it put on the cluster (release is asynchronous)."""
    deadline = time.monotonic() + 10
    while _scheduler_tasks(client) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _scheduler_tasks(client) == 0


# ---------------------------------------------------------------------------- equality
@pytest.mark.parametrize(("config", "rebalance"), [("lasso", "ME"), ("hcgl", "QE")])
def test_local_cluster_equals_serial(panel, client, config, rebalance):
    kw = dict(rebalance=rebalance, min_history=52)
    base = _model(panel, config)
    cold = RollingLassoModel(base, warm_start=False, **kw).fit(panel.x, panel.y)
    dask_cold = RollingLassoModel(base, warm_start=False, scheduler=client, **kw).fit(
        panel.x, panel.y)
    assert len(cold.results_) >= 16
    assert_same_rolling(cold, dask_cold)  # bit for bit
    pd.testing.assert_frame_equal(cold.fit_info_, dask_cold.fit_info_, check_exact=True)
    warm = RollingLassoModel(base, **kw).fit(panel.x, panel.y)
    dask_warm = RollingLassoModel(base, scheduler=client, **kw).fit(panel.x, panel.y)
    assert_same_rolling(warm, dask_warm, atol=WARM_ATOL)
    # the cluster's two worker threads make two blocks: the second starts cold
    assert (~dask_warm.fit_info_["warm"].astype(bool)).sum() == 2
    _wait_cluster_empty(client)


def test_the_blocks_are_those_of_joblib(panel, client):
    """Two Dask workers and two loky processes fit the same blocks: the same numbers, bit for
    bit, warm starts included."""
    kw = dict(rebalance="QE", min_history=52)
    base = _model(panel)
    assert_same_rolling(RollingLassoModel(base, n_jobs=2, **kw).fit(panel.x, panel.y),
                 RollingLassoModel(base, scheduler=client, **kw).fit(panel.x, panel.y))


def test_n_jobs_sets_the_number_of_blocks(panel, client):
    base = _model(panel)
    kw = dict(rebalance="QE", min_history=52, scheduler=client)
    for n_jobs, cold_starts in ((1, 1), (3, 3), (-1, 2)):
        info = RollingLassoModel(base, n_jobs=n_jobs, **kw).fit(panel.x, panel.y).fit_info_
        assert (~info["warm"].astype(bool)).sum() == cold_starts


def test_the_workers_notes_reach_the_caller_with_their_dates(panel, client):
    """A factor constant in the first windows: each worker records its dates' notes, the
    caller warns each once with the dates (a worker's own warning would stay in its log)."""
    x = panel.x.copy()
    x.iloc[:100, 1] = 0.02
    kw = dict(rebalance="QE", window=52)
    caught = {}
    for name, extra in (("serial", {}), ("dask", {"scheduler": client})):
        with warnings.catch_warnings(record=True) as got:
            warnings.simplefilter("always")
            caught[name] = RollingLassoModel(_model(panel), **kw, **extra).fit(x, panel.y)
        caught[name + " warnings"] = [str(w.message) for w in got if "'f1'" in str(w.message)]
    serial, dask = caught["serial"], caught["dask"]
    assert_same_rolling(serial, dask, atol=WARM_ATOL)
    dates = list(dask.notes_["date"])
    assert len(dates) >= 3 and dates[-1] < x.index[100]
    assert caught["dask warnings"] == caught["serial warnings"]
    assert len(caught["dask warnings"]) == 1
    assert caught["dask warnings"][0].startswith(f"{len(dates)} of {len(dask.fit_info_)} "
                                                 f"rebalancing dates, from {dates[0].date()}")


def _broken(panel):
    """x infinite on row 130; eight 30-row windows: dates 4 and 5 (either side of the cut
    between two blocks of four) hold it."""
    x = panel.x.copy()
    x.iloc[130, 2] = np.inf
    return x, list(x.index[[99, 109, 119, 139, 159, 179, 199, 219]])


@pytest.mark.parametrize("on_failure", ["previous", "skip"])
def test_failures_and_policies_match_serial(panel, client, on_failure):
    x, dates = _broken(panel)
    kw = dict(rebalance=dates, window=30, on_failure=on_failure, warm_start=False)
    base = _model(panel)
    serial = RollingLassoModel(base, **kw).fit(x, panel.y)
    dask = RollingLassoModel(base, scheduler=client, **kw).fit(x, panel.y)
    assert_same_rolling(serial, dask)
    assert list(dask.failures_["date"]) == dates[3:5]
    if on_failure == "previous":
        assert dask.results_[dates[4]] is dask.results_[dates[2]]


def test_raise_gives_the_first_failed_date_and_frees_the_cluster(panel, client):
    x, dates = _broken(panel)
    x.iloc[200, 0] = np.nan  # a later failure in block 2 only
    base = _model(panel)
    messages = []
    for scheduler in (None, client):
        with pytest.raises(ValueError, match=(
                f"^rebalancing date {dates[3].date()}: x: column 'f2', row .* is infinite$"
        )) as info:
            RollingLassoModel(base, rebalance=dates, window=30, on_failure="raise",
                              scheduler=scheduler).fit(x, panel.y)
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    _wait_cluster_empty(client)


def test_a_worker_exception_keeps_its_type_and_message(panel, client):
    class Broken(LassoModel):  # a local class: shipped to the workers by value
        def _fit_prepared(self, *args, **kwargs):
            raise KeyError("no such factor: f9")

    with pytest.raises(KeyError, match="no such factor: f9"):
        RollingLassoModel(Broken(reg_lambda=0.1), rebalance="QE", min_history=52,
                          scheduler=client).fit(panel.x, panel.y)
    _wait_cluster_empty(client)


# ---------------------------------------------------------------------------- progress
def test_progress_per_block_and_cancelling(panel, client):
    calls = []
    model = RollingLassoModel(_model(panel), rebalance="ME", min_history=52, scheduler=client)
    model.fit(panel.x, panel.y, progress=lambda done, total: calls.append((done, total)))
    n = len(model.fit_info_)
    assert len(calls) == 2 and all(total == n for _, total in calls)
    assert calls[-1] == (n, n) and 0 < calls[0][0] < n

    def cancel(done, total):
        raise KeyboardInterrupt(f"stopped at {done}/{total}")

    again = RollingLassoModel(_model(panel), rebalance="ME", min_history=52, scheduler=client)
    with pytest.raises(KeyboardInterrupt, match=rf"^stopped at \d+/{n}$"):
        again.fit(panel.x, panel.y, progress=cancel)
    assert not hasattr(again, "results_")
    _wait_cluster_empty(client)


# ---------------------------------------------------------------------------- addresses
def _clients(client) -> int:
    return client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.clients))


def test_an_address_connects_for_the_fit_only(panel, client):
    base = _model(panel)
    kw = dict(rebalance="QE", min_history=52, warm_start=False)
    before = _clients(client)
    by_client = RollingLassoModel(base, scheduler=client, **kw).fit(panel.x, panel.y)
    by_address = RollingLassoModel(base, scheduler=client.scheduler.address, **kw).fit(
        panel.x, panel.y)
    assert_same_rolling(by_client, by_address)
    assert client.status == "running"  # the user's Client stays open
    deadline = time.monotonic() + 10
    while _clients(client) != before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _clients(client) == before  # the fit's own Client was closed


def test_clone_shares_the_client(client):
    model = RollingLassoModel(scheduler=client)
    assert clone(model).scheduler is client


@pytest.mark.parametrize("bad", ["localhost:8786", "http://127.0.0.1:8787", "tcp://", ""])
def test_a_bad_address_is_refused_before_connecting(panel, bad):
    message = ("scheduler must be a dask.distributed.Client or a Dask scheduler address such "
               "as 'tcp://host:8786' (tcp://, tls://, inproc://, ucx://, ws://, wss://), "
               f"got {bad!r}")
    model = RollingLassoModel(scheduler=bad)
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        model.fit(panel.x, panel.y)
    assert not hasattr(model, "results_")


def test_not_a_client_is_refused(panel):
    with pytest.raises(ValueError, match=r"^scheduler must be a dask.distributed.Client or a "
                                         r"Dask scheduler address such as 'tcp://host:8786', "
                                         r"got int$"):
        RollingLassoModel(scheduler=8786).fit(panel.x, panel.y)


def test_without_dask_the_error_says_what_to_install(panel, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    with pytest.raises(ImportError, match=re.escape(
            'scheduler: Dask is not installed; pip install "dask[distributed]" (or the dask '
            'extra: pip install ".[dask]" in a checkout)')):
        RollingLassoModel(scheduler="tcp://127.0.0.1:8786").fit(panel.x, panel.y)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_scheduler_times_out_with_its_address(panel, monkeypatch):
    monkeypatch.setattr(_distributed, "CONNECT_TIMEOUT", 1.0)
    address = f"tcp://127.0.0.1:{_free_port()}"  # nothing listens there
    model = RollingLassoModel(scheduler=address)
    with pytest.raises(ConnectionError, match=(
            f"^scheduler {re.escape(repr(address))}: no Dask scheduler answered within 1 s ")):
        model.fit(panel.x, panel.y)
    assert not hasattr(model, "results_")


def test_a_closed_client_is_refused(panel, client):
    c = distributed.Client(client.scheduler.address, set_as_default=False)
    c.close()
    with pytest.raises(ConnectionError, match="^scheduler: the dask.distributed.Client is "
                                              "closed; give an open Client or the scheduler's"):
        RollingLassoModel(scheduler=c).fit(panel.x, panel.y)


# ---------------------------------------------------------------------------- deployment
def _start(args, log):
    env = dict(os.environ, PYTHONPATH=str(ROOT), XL_FACTORLASSO_BLAS_THREADS="1")
    # own session: the finalizer kills the whole group (a nanny and its worker process)
    return subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(procs):
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _assert_gone(pids):
    deadline = time.monotonic() + 10
    while not all(_gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [pid for pid in pids if not _gone(pid)] == []


def _address(file: Path) -> str:
    """The scheduler's address from its scheduler file (written once it listens)."""
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        try:
            return json.loads(file.read_text())["address"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            time.sleep(0.1)
    raise AssertionError(f"the scheduler wrote no {file.name} within 40 s")


def test_scheduler_and_two_worker_processes_by_pid(panel, tmp_path):
    """The way a user deploys: ``dask scheduler`` and two ``dask worker`` commands sharing a
    scheduler file; the model is given the address only."""
    file = tmp_path / "scheduler.json"
    procs, pids = [], []
    log = open(tmp_path / "cluster.log", "wb")  # noqa: SIM115 - closed in the finally
    try:
        procs.append(_start(["distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                             "--port", "0", "--no-dashboard", "--dashboard-address",
                             "127.0.0.1:0", "--scheduler-file", str(file)],
                            log))
        for _ in range(2):
            procs.append(_start(["distributed.cli.dask_worker", "--scheduler-file", str(file),
                                 "--nthreads", "1", "--nworkers", "1", "--no-dashboard",
                                 "--dashboard-address", "127.0.0.1:0", "--host", "127.0.0.1"],
                                log))
        address = _address(file)
        with distributed.Client(address, timeout=20, set_as_default=False) as c:
            c.wait_for_workers(2, timeout=40)
            pids = [p.pid for p in procs]
            pids += [pid for pid in c.run(os.getpid).values()]  # the worker processes
        base = _model(panel)
        kw = dict(rebalance="QE", min_history=52, warm_start=False)
        serial = RollingLassoModel(base, **kw).fit(panel.x, panel.y)
        calls = []
        deployed = RollingLassoModel(base, scheduler=address, **kw).fit(
            panel.x, panel.y, progress=lambda done, total: calls.append(done))
        assert_same_rolling(serial, deployed)
        assert len(calls) == 2 and calls[-1] == len(serial.fit_info_)
    finally:
        _stop(procs)
        log.close()
    assert len(pids) == 5  # the scheduler, two nannies, their two worker processes
    _assert_gone(pids)


def test_a_cluster_without_workers_is_an_error_not_a_wait(panel):
    with distributed.LocalCluster(n_workers=0, processes=False,
                                  dashboard_address="127.0.0.1:0") as cluster, \
            distributed.Client(cluster, set_as_default=False) as empty:
        message = f"scheduler {empty.scheduler.address}: the Dask cluster has no workers"
        with pytest.raises(ConnectionError, match=f"^{re.escape(message)}$"):
            RollingLassoModel(_model(panel), rebalance="QE", min_history=52,
                              scheduler=empty).fit(panel.x, panel.y)


class _FakeLibc:
    def __init__(self):
        self.calls = []

    def mallopt(self, param, value):
        self.calls.append(("mallopt", param, value))
        return 1

    def malloc_trim(self, pad):
        self.calls.append(("malloc_trim", pad))
        return 1


def test_blocks_reuse_the_heap_under_dasks_trim_setting_then_restore_it(monkeypatch):
    """Dask workers start with MALLOC_TRIM_THRESHOLD_=65536 (glibc then mmaps every array
    above 128 KiB): raised while blocks run, set back (and trimmed) after the last one."""
    libc = _FakeLibc()
    monkeypatch.setattr(_distributed, "_glibc", lambda: libc)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    with _distributed._heap_for_arrays():
        with _distributed._heap_for_arrays():  # a second block in another thread
            assert libc.calls == [("mallopt", -1, 256 << 20), ("mallopt", -3, 32 << 20)]
        assert len(libc.calls) == 2  # the first block still runs
    assert libc.calls[2:] == [("mallopt", -1, 65536), ("mallopt", -3, 128 * 1024),
                              ("malloc_trim", 0)]
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    libc.calls.clear()
    with _distributed._heap_for_arrays():  # not a Dask worker's setting: left alone
        pass
    assert libc.calls == []


def test_the_workers_run_with_dasks_trim_setting(client):
    """What the heap setting above answers: the workers of a LocalCluster have it."""
    assert set(client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_").values()) == {"65536"}
