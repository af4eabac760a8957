"""`fpc-es`: a local Elasticsearch cluster for development, tests and CI.

In: Elastic's minimal distribution (`integ-test-zip`, no x-pack features
beyond security, which is switched off), fetched once from Maven Central with
`mvn dependency:copy` and unpacked under the home directory. Out: N nodes on
127.0.0.1, node i answering HTTP on port P+i and talking transport on
P+100+i, each with its own config, data, logs and pid file under
`<home>/cluster-<P>/node-<i>`.

Elasticsearch refuses to run as root. When started by root, the nodes run as
the unprivileged system user `fpc-es` (created with `useradd` on first use),
which owns the cluster directory; the unpacked distribution stays owned by
root and only needs to be readable. Because /root is not traversable by other
users, root's default home is /var/cache/fpc/es instead of ~/.cache/fpc/es.
Runs in the calling process; the nodes detach and outlive it until `stop`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fpc.errors import FpcError, StoreError
from fpc.logsetup import setup_logging

logger = logging.getLogger(__name__)

ES_VERSION = "8.14.1"
ES_ARTIFACT = (
    f"org.elasticsearch.distribution.integ-test-zip:elasticsearch:{ES_VERSION}:zip"
)
ES_USER = "fpc-es"
DEFAULT_HTTP_PORT = 9200
TRANSPORT_OFFSET = 100  # transport port = HTTP port + 100 (9200 -> 9300)
DEFAULT_HEAP = "512m"
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
MIN_MAP_COUNT = 262144


@dataclass(frozen=True)
class Cluster:
    """Where one local cluster lives and how it is laid out."""

    home: Path
    nodes: int = 1
    http_port: int = DEFAULT_HTTP_PORT
    heap: str = DEFAULT_HEAP

    @property
    def name(self) -> str:
        return f"fpc-{self.http_port}"

    @property
    def dir(self) -> Path:
        return self.home / f"cluster-{self.http_port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def node_dir(self, i: int) -> Path:
        return self.dir / f"node-{i}"

    def pid_file(self, i: int) -> Path:
        return self.node_dir(i) / "es.pid"

    def log_file(self, i: int) -> Path:
        return self.node_dir(i) / "logs" / f"{self.name}.log"


def default_home() -> Path:
    """~/.cache/fpc/es, or /var/cache/fpc/es for root (see module docstring)."""
    if os.geteuid() == 0:
        return Path("/var/cache/fpc/es")
    return Path.home() / ".cache" / "fpc" / "es"


def dist_dir(home: Path) -> Path:
    return home / "dist" / f"elasticsearch-{ES_VERSION}"


def find_java_home() -> Path:
    """JAVA_HOME, else the directory above the `java` on PATH."""
    if os.environ.get("JAVA_HOME"):
        return Path(os.environ["JAVA_HOME"])
    java = shutil.which("java")
    if java is None:
        raise StoreError(
            "no java found on PATH and JAVA_HOME is unset; "
            "install Java 17 (apt-get install openjdk-17-jre-headless)"
        )
    return Path(java).resolve().parent.parent


def fetch_zip(home: Path) -> Path:
    """The distribution zip from the local Maven repository, fetched if missing."""
    m2 = Path.home() / ".m2" / "repository" / "org" / "elasticsearch"
    cached = m2 / "distribution" / "integ-test-zip" / "elasticsearch" / ES_VERSION
    zip_path = cached / f"elasticsearch-{ES_VERSION}.zip"
    if zip_path.exists():
        return zip_path
    out = home / "download"
    out.mkdir(parents=True, exist_ok=True)
    cmd = [
        "mvn",
        "-q",
        "dependency:copy",
        f"-Dartifact={ES_ARTIFACT}",
        f"-DoutputDirectory={out}",
    ]
    logger.info("fetching elasticsearch artifact=%s", ES_ARTIFACT)
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as exc:
        raise StoreError(
            f"cannot fetch {ES_ARTIFACT} with maven ({exc}); install maven and "
            f"check access to Maven Central, or put the zip at {zip_path}"
        ) from exc
    return out / f"elasticsearch-{ES_VERSION}.zip"


def unpack(zip_path: Path, home: Path) -> Path:
    """Unpack the distribution once, keeping the executable bits."""
    target = dist_dir(home)
    if (target / "bin" / "elasticsearch").exists():
        return target
    tmp = home / "dist.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            path = Path(zf.extract(info, tmp))
            mode = info.external_attr >> 16
            if mode:
                path.chmod(mode & 0o777)
    (home / "dist").mkdir(parents=True, exist_ok=True)
    (tmp / target.name).rename(target)
    shutil.rmtree(tmp, ignore_errors=True)
    logger.info("elasticsearch unpacked path=%s", target)
    return target


def ensure_user() -> pwd.struct_passwd:
    """The unprivileged user the nodes run as when we are root."""
    try:
        return pwd.getpwnam(ES_USER)
    except KeyError:
        pass
    cmd = [
        "useradd",
        "--system",
        "--no-create-home",
        "--shell",
        "/usr/sbin/nologin",
        ES_USER,
    ]
    try:
        subprocess.run(cmd, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise StoreError(
            f"running as root, and cannot create user {ES_USER!r} ({exc}); "
            f"create it by hand: useradd --system {ES_USER}"
        ) from exc
    logger.info("user created name=%s", ES_USER)
    return pwd.getpwnam(ES_USER)


def check_traversable(path: Path) -> None:
    """Fail early if another user cannot reach `path` (e.g. under /root)."""
    for parent in [path, *path.parents]:
        if parent.exists() and not parent.stat().st_mode & 0o001:
            raise StoreError(
                f"directory {parent} is not searchable by user {ES_USER!r}, so the "
                f"nodes cannot reach {path}; pass --home under /var or /tmp"
            )


def node_config(cluster: Cluster, i: int) -> str:
    """elasticsearch.yml of node i."""
    d = cluster.node_dir(i)
    lines = [
        f"cluster.name: {cluster.name}",
        f"node.name: node-{i}",
        f"path.data: {d / 'data'}",
        f"path.logs: {d / 'logs'}",
        "network.host: 127.0.0.1",
        f"http.port: {cluster.http_port + i}",
        f"transport.port: {cluster.http_port + TRANSPORT_OFFSET + i}",
        "xpack.security.enabled: false",
        "action.destructive_requires_name: false",
        # test machines often have little free disk; never go read-only
        "cluster.routing.allocation.disk.threshold_enabled: false",
    ]
    if cluster.nodes == 1:
        return "\n".join([*lines, "discovery.type: single-node", ""])
    ports = range(cluster.http_port, cluster.http_port + cluster.nodes)
    seeds = [f"127.0.0.1:{p + TRANSPORT_OFFSET}" for p in ports]
    masters = [f"node-{n}" for n in range(cluster.nodes)]
    lines.append(f"discovery.seed_hosts: {json.dumps(seeds)}")
    lines.append(f"cluster.initial_master_nodes: {json.dumps(masters)}")
    return "\n".join([*lines, ""])


def jvm_options(cluster: Cluster, i: int) -> str:
    """jvm.options of node i: every path absolute, inside the node directory."""
    logs = cluster.node_dir(i) / "logs"
    return "\n".join(
        [
            "-XX:+UseG1GC",
            "-Djava.io.tmpdir=${ES_TMPDIR}",
            "-XX:+ExitOnOutOfMemoryError",
            f"-XX:ErrorFile={logs}/hs_err_pid%p.log",
            "-Xlog:disable",
            "",
        ]
    )


def write_node(cluster: Cluster, dist: Path, i: int) -> None:
    """Create node i's directories and config files."""
    d = cluster.node_dir(i)
    conf = d / "conf"
    for sub in ("conf", "data", "logs", "tmp"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy(dist / "config" / "log4j2.properties", conf / "log4j2.properties")
    (conf / "elasticsearch.yml").write_text(node_config(cluster, i))
    (conf / "jvm.options").write_text(jvm_options(cluster, i))


def chown_tree(path: Path, user: pwd.struct_passwd) -> None:
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            os.chown(os.path.join(root, name), user.pw_uid, user.pw_gid)
    os.chown(path, user.pw_uid, user.pw_gid)


def read_pid(path: Path) -> int | None:
    """Pid from a pid file if that process is still alive."""
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def launch_node(cluster: Cluster, dist: Path, i: int) -> subprocess.Popen[bytes]:
    """Start node i detached (`-d`); the launcher exits once the node runs."""
    d = cluster.node_dir(i)
    env = dict(os.environ)
    env.update(
        ES_JAVA_HOME=str(find_java_home()),
        ES_PATH_CONF=str(d / "conf"),
        ES_TMPDIR=str(d / "tmp"),
        ES_JAVA_OPTS=f"-Xms{cluster.heap} -Xmx{cluster.heap}",
    )
    env.pop("JAVA_HOME", None)
    env.pop("JAVA_TOOL_OPTIONS", None)
    user = ensure_user() if os.geteuid() == 0 else None
    cmd = [str(dist / "bin" / "elasticsearch"), "-d", "-p", str(cluster.pid_file(i))]
    out = open(d / "launcher.out", "wb")  # noqa: SIM115 - handed to the child
    with out:
        return subprocess.Popen(
            cmd,
            cwd=d,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            extra_groups=[] if user else None,
        )


def check_map_count(nodes: int) -> None:
    """Warn when vm.max_map_count is below what Elasticsearch asks for."""
    try:
        count = int(Path("/proc/sys/vm/max_map_count").read_text())
    except (OSError, ValueError):
        return
    if count >= MIN_MAP_COUNT:
        return
    if os.geteuid() == 0 and nodes > 1:
        try:
            Path("/proc/sys/vm/max_map_count").write_text(str(MIN_MAP_COUNT))
            logger.info("vm.max_map_count raised to=%d", MIN_MAP_COUNT)
            return
        except OSError:
            pass
    # bound to loopback, the nodes run in development mode and only warn
    logger.warning(
        "vm.max_map_count=%d below %d; fine for tests on 127.0.0.1, for heavy "
        "use run: sysctl -w vm.max_map_count=%d",
        count,
        MIN_MAP_COUNT,
        MIN_MAP_COUNT,
    )


def get_json(url: str, timeout: float = 5.0) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        answer: dict[str, Any] = json.loads(resp.read())
        return answer


def answering(cluster: Cluster) -> bool:
    """Whether a cluster answers health requests on the cluster's first port."""
    try:
        get_json(f"{cluster.url}/_cluster/health", timeout=2.0)
    except (OSError, ValueError):
        return False
    return True


def wait_healthy(cluster: Cluster, timeout_s: float) -> dict[str, Any]:
    """Cluster health once all nodes joined and it is yellow or green."""
    deadline = time.monotonic() + timeout_s
    query = f"/_cluster/health?wait_for_status=yellow&wait_for_nodes={cluster.nodes}"
    last: object = "no answer"
    while time.monotonic() < deadline:
        try:
            health = get_json(f"{cluster.url}{query}&timeout=2s", timeout=10)
            if not health.get("timed_out"):
                return health
            last = health.get("status")
        except (OSError, ValueError) as exc:
            last = exc
        time.sleep(0.5)
    raise StoreError(
        f"elasticsearch cluster {cluster.name} at {cluster.url} not healthy after "
        f"{timeout_s:.0f}s (last: {last}); see {cluster.log_file(0)} and "
        f"{cluster.node_dir(0) / 'launcher.out'}"
    )


def start(
    cluster: Cluster, fresh: bool = False, timeout_s: float = START_TIMEOUT_S
) -> dict[str, Any]:
    """Start every node not running yet and wait for a healthy cluster."""
    cluster.home.mkdir(parents=True, exist_ok=True)
    dist = unpack(fetch_zip(cluster.home), cluster.home)
    if fresh:
        stop(cluster)
        shutil.rmtree(cluster.dir, ignore_errors=True)
    check_map_count(cluster.nodes)
    todo = [i for i in range(cluster.nodes) if read_pid(cluster.pid_file(i)) is None]
    if todo and not fresh and answering(cluster):
        # A node whose pid file is gone (killed test run, other home) still
        # serves this port: a second one could not lock its data path anyway.
        logger.warning(
            "elasticsearch already answers at %s without a pid file here; using it",
            cluster.url,
        )
        return wait_healthy(cluster, timeout_s)
    for i in todo:
        write_node(cluster, dist, i)
    if os.geteuid() == 0:
        check_traversable(cluster.dir)
        chown_tree(cluster.dir, ensure_user())
    launchers = {i: launch_node(cluster, dist, i) for i in todo}
    for i, proc in launchers.items():
        wait_launcher(cluster, i, proc, timeout_s)
    health = wait_healthy(cluster, timeout_s)
    logger.info(
        "elasticsearch started cluster=%s url=%s nodes=%d status=%s",
        cluster.name,
        cluster.url,
        cluster.nodes,
        health["status"],
    )
    return health


def wait_launcher(
    cluster: Cluster, i: int, proc: subprocess.Popen[bytes], timeout_s: float
) -> None:
    """The `-d` launcher returns 0 once node i runs; anything else is a failure."""
    try:
        rc = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = -1
    if rc != 0:
        out = cluster.node_dir(i) / "launcher.out"
        raise StoreError(
            f"elasticsearch node-{i} of {cluster.name} failed to start (launcher "
            f"exit {rc}); read {out} and {cluster.log_file(i)}, fix the cause, "
            f"then run fpc-es stop --http-port {cluster.http_port} and start again"
        )


def stop(cluster: Cluster, timeout_s: float = STOP_TIMEOUT_S) -> int:
    """SIGTERM every node, wait for it to exit, SIGKILL stragglers; count stopped."""
    pids = {}
    for i in range(node_count(cluster)):
        pid = read_pid(cluster.pid_file(i))
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            pids[i] = pid
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(alive(p) for p in pids.values()):
        time.sleep(0.2)
    for i, pid in pids.items():
        if alive(pid):
            logger.warning("node did not stop, killing node=%d pid=%d", i, pid)
            os.kill(pid, signal.SIGKILL)
        cluster.pid_file(i).unlink(missing_ok=True)
    if pids:
        logger.info(
            "elasticsearch stopped cluster=%s nodes=%d", cluster.name, len(pids)
        )
    return len(pids)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie child of ours counts as gone
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def node_count(cluster: Cluster) -> int:
    """Nodes configured on disk (at least the number asked for)."""
    found = len(list(cluster.dir.glob("node-*"))) if cluster.dir.exists() else 0
    return max(found, cluster.nodes)


def status(cluster: Cluster) -> list[str]:
    """One line per node, then the cluster health."""
    lines = []
    for i in range(node_count(cluster)):
        pid = read_pid(cluster.pid_file(i))
        state = f"running pid={pid}" if pid else "stopped"
        lines.append(f"node-{i} http={cluster.http_port + i} {state}")
    try:
        h = get_json(f"{cluster.url}/_cluster/health")
        lines.append(
            f"cluster={h['cluster_name']} status={h['status']} "
            f"nodes={h['number_of_nodes']} url={cluster.url}"
        )
    except (OSError, ValueError) as exc:
        lines.append(f"cluster={cluster.name} unreachable at {cluster.url} ({exc})")
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="fpc-es", description=__doc__.splitlines()[0])
    p.add_argument("command", choices=("start", "stop", "status"))
    p.add_argument("--nodes", type=int, default=1, help="nodes in the cluster")
    p.add_argument("--http-port", type=int, default=DEFAULT_HTTP_PORT)
    p.add_argument("--home", type=Path, default=None, help="default: see docs")
    p.add_argument("--heap", default=DEFAULT_HEAP, help="JVM heap per node")
    p.add_argument("--fresh", action="store_true", help="start: wipe old data")
    p.add_argument("--timeout", type=float, default=START_TIMEOUT_S)
    args = p.parse_args(argv)
    if not 1 <= args.nodes <= 9:
        p.error(f"--nodes {args.nodes} is out of range; use 1 to 9")
    return args


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    args = parse_args(argv)
    home = (args.home or default_home()).absolute()
    cluster = Cluster(home, args.nodes, args.http_port, args.heap)
    try:
        if args.command == "start":
            start(cluster, fresh=args.fresh, timeout_s=args.timeout)
            print(cluster.url)
        elif args.command == "stop":
            stop(cluster)
        else:
            print("\n".join(status(cluster)))
    except FpcError as exc:
        logger.critical("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
