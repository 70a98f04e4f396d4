"""docker-py and testcontainers-python against berth: the calls their users make every day.

Run by tests/tests/clients.rs with DOCKER_HOST pointing at a berth machine. Each check
asserts with a message naming what failed.
"""
import io
import os
import sys
import tarfile
import time

import docker

client = docker.from_env(timeout=120)
assert client.ping()
info = client.info()
assert info["Swarm"]["LocalNodeState"] == "inactive", info["Swarm"]

# containers.run without detach returns the output.
out = client.containers.run("busybox", ["sh", "-c", "echo hello-from-run"], remove=True)
assert out == b"hello-from-run\n", f"containers.run output: {out!r}"

c = client.containers.run(
    "busybox", ["sh", "-c", "echo started; exec sleep 1000"], detach=True,
    name="pyc", labels={"suite": "docker-py"}, environment={"GREETING": "hi"},
)
deadline = time.time() + 60
while b"started" not in c.logs():
    assert time.time() < deadline, "logs never showed started"
    time.sleep(0.2)
code, output = c.exec_run(["sh", "-c", "echo $GREETING; exit 3"])
assert (code, output) == (3, b"hi\n"), f"exec_run: {(code, output)}"
assert client.containers.list(filters={"label": "suite=docker-py"})[0].id == c.id

# put_archive / get_archive
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as t:
    data = b"put by docker-py\n"
    info_ = tarfile.TarInfo("note.txt")
    info_.size = len(data)
    t.addfile(info_, io.BytesIO(data))
assert c.put_archive("/tmp", buf.getvalue())
stream, stat = c.get_archive("/tmp/note.txt")
assert stat["name"] == "note.txt" and stat["size"] == 17, f"get_archive stat: {stat}"
with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as t:
    assert t.extractfile("note.txt").read() == b"put by docker-py\n"

# commit: the container's changes become an image.
image = c.commit(repository="pycommit", tag="v1", changes=["ENV COMMITTED=yes"])
out = client.containers.run("pycommit:v1", ["sh", "-c", "cat /tmp/note.txt; echo $COMMITTED"], remove=True)
assert out == b"put by docker-py\nyes\n", f"commit: the image lacks the changes: {out!r}"

# stats: CPU throttling under a CPU limit, block I/O and network counters are measured.
busy = client.containers.run(
    "busybox",
    ["sh", "-c", "ping -c 2 $(ip route | awk '/default/ {print $3}'); "
     "dd if=/dev/zero of=/tmp/f bs=1M count=4 2>/dev/null; sync; echo busy; "
     "while :; do :; done"],
    detach=True, nano_cpus=500_000_000,
)
deadline = time.time() + 60
while True:
    s = busy.stats(stream=False)
    throttled = s["cpu_stats"]["throttling_data"]["throttled_periods"]
    rx = s["networks"].get("eth0", {}).get("rx_bytes", 0)
    written = sum(e["value"] for e in s["blkio_stats"]["io_service_bytes_recursive"] or []
                  if e["op"] == "write")
    if throttled > 0 and rx > 0 and written >= 4 << 20 and b"busy" in busy.logs():
        break
    assert time.time() < deadline, (
        f"stats: throttled_periods {throttled}, eth0 rx_bytes {rx}, blkio write bytes {written}")
    time.sleep(0.5)
assert s["pids_stats"]["current"] >= 1, f"stats pids: {s['pids_stats']}"
busy.remove(force=True)

c.kill()
result = c.wait(timeout=60)
assert result["StatusCode"] == 137, f"kill then wait: {result}"
c.reload()
assert c.status == "exited", f"after kill: {c.status}"
c.remove()
client.images.remove("pycommit:v1")

# testcontainers: a container with a wait strategy and a mapped port.
# Ryuk (the reaper container) would be pulled from Docker Hub, which the tests never
# reach; the `with` block removes the container itself. And this test machine may itself
# run in a container (/.dockerenv), where testcontainers would look for the docker host
# at a gateway address: the berth machine's ports are on this host's loopback.
os.environ["TESTCONTAINERS_RYUK_DISABLED"] = "true"
os.environ["TESTCONTAINERS_CONNECTION_MODE"] = "docker_host"
from testcontainers.core.container import DockerContainer
from testcontainers.core.waiting_utils import wait_for_logs
import urllib.request

web = (
    DockerContainer("busybox")
    .with_command(["sh", "-c", "mkdir /w && echo tc-ok > /w/index.html && echo serving && exec httpd -f -p 8080 -h /w"])
    .with_exposed_ports(8080)
)
with web:
    wait_for_logs(web, "serving", timeout=60)
    host = web.get_container_host_ip()
    port = web.get_exposed_port(8080)
    deadline = time.time() + 60
    while True:
        try:
            body = urllib.request.urlopen(f"http://{host}:{port}/", timeout=10).read()
            break
        except OSError as e:
            assert time.time() < deadline, f"testcontainers' mapped port never answered: {e}"
            time.sleep(0.5)
    assert body == b"tc-ok\n", f"testcontainers mapped port: {body!r}"
print("clients ok")
