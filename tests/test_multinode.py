"""Two "machines" on one host: two Linux network namespaces joined by a veth pair (private addresses inside the
namespaces only, so no traffic leaves the host), one `torchrun --nnodes 2 --node-rank R --rdzv-endpoint` in each,
gloo over the veth link. The job equals one process within 2e-5, and a node whose process is killed ends the other
with a clear message within its timeout. Skipped where namespaces cannot be made (not root, no `ip`)."""

import os
import secrets
import shutil
import subprocess
import sys
import time

import pytest

from test_distributed import WORKER, _assert_close, _env, _model, _single

SUBNET = "10.231.{}.{}"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def two_hosts():
    """{node rank: (namespace, its veth, its address)}; the namespaces are removed afterwards, whatever happened."""
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2's `ip` to make network namespaces (apt-get install iproute2)")
    tag = secrets.token_hex(3)
    hosts = {rank: (f"vk{tag}n{rank}", f"vk{tag}v{rank}", SUBNET.format(int(tag[:2], 16), rank + 1))
             for rank in (0, 1)}
    try:
        _ip("netns", "add", hosts[0][0])
    except (subprocess.CalledProcessError, OSError) as err:
        pytest.skip(f"cannot make a network namespace here (needs root or CAP_SYS_ADMIN): {err}")
    try:
        _ip("netns", "add", hosts[1][0])
        _ip("link", "add", hosts[0][1], "type", "veth", "peer", "name", hosts[1][1])
        for namespace, veth, address in hosts.values():
            _ip("link", "set", veth, "netns", namespace)
            _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", veth)
            _ip("-n", namespace, "link", "set", veth, "up")
            _ip("-n", namespace, "link", "set", "lo", "up")
        yield hosts
    finally:
        for namespace, _, _ in hosts.values():
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=30)


def _start_nodes(hosts, *args) -> list[subprocess.Popen]:
    endpoint = f"{hosts[0][2]}:29{secrets.randbelow(400) + 100}"
    procs = []
    for rank, (namespace, veth, _) in hosts.items():
        command = ["ip", "netns", "exec", namespace, sys.executable, "-m", "torch.distributed.run", "--nnodes=2",
                   f"--node-rank={rank}", "--nproc-per-node=1", "--rdzv-backend=static", f"--rdzv-endpoint={endpoint}",
                   WORKER, *map(str, args)]
        env = {**_env(), "GLOO_SOCKET_IFNAME": veth, "VAEKIT_DIST_TIMEOUT": "20"}
        procs.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return procs


def _finish(procs, timeout: float) -> list[str]:
    try:
        return [proc.communicate(timeout=timeout)[1] for proc in procs]
    finally:
        for proc in procs:
            proc.kill()


def test_two_nodes_in_network_namespaces_match_one_process(tmp_path, two_hosts):
    procs = _start_nodes(two_hosts, tmp_path / "two", 2)
    errors = _finish(procs, 240)
    assert [p.returncode for p in procs] == [0, 0], "\n".join(e[-2000:] for e in errors)
    _single(tmp_path / "one", 2)
    _assert_close(_model(tmp_path / "two"), _model(tmp_path / "one"))


def test_killing_one_node_ends_the_other_with_a_clear_message_within_its_timeout(tmp_path, two_hosts):
    started = time.monotonic()
    procs = _start_nodes(two_hosts, tmp_path / "run", 3, "--die-rank", "1", "--die-step", "3")
    survivor, _ = _finish(procs, 200)
    assert procs[0].returncode != 0 and time.monotonic() - started < 200
    assert "rank 0 of 2: the gradient all-reduce failed because another process died or did not answer within 20 s" \
        in survivor, survivor[-3000:]
    assert "restart with --resume" in survivor
