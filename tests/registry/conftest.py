"""Azurite, the real Azure Storage emulator, started on a free loopback port for the registry tests."""
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.support import free_port

REPO = Path(__file__).resolve().parents[2]
AZURITE = REPO / ".azurite" / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="  # Azurite's well-known dev key




@pytest.fixture(scope="session")
def azurite(tmp_path_factory):
    if not AZURITE.exists():
        pytest.fail(f"Azurite is not installed at {AZURITE}: run scripts/setup.sh --test "
                    "(it runs: npm install --prefix .azurite azurite@3)")
    port = free_port()
    workdir = tmp_path_factory.mktemp("azurite")
    process = subprocess.Popen([str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--inMemoryPersistence",
                                "--skipApiVersionCheck", "--silent"],
                               cwd=workdir,  # Azurite writes its debug/extent files relative to here
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, process.stdout.read().decode()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "Azurite did not start"
            time.sleep(0.2)
    yield (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={ACCOUNT_KEY};"
           f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;")
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:  # it waits for idle keep-alive connections; it holds no data we keep
        process.kill()
        process.wait(timeout=10)
    shutil.rmtree(workdir, ignore_errors=True)
