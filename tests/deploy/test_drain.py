"""`brainwave serve` on SIGTERM: health turns NOT_SERVING first, calls are still answered during the drain
delay, and the process exits 0 (calls in flight when the listener closes: tests/deploy/test_replicas.py and
the container test)."""
from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor

from brainwave.client import PredictionClient
from tests.deploy.harness import cluster, watch_health
from tests.support import free_port


def test_sigterm_reports_not_serving_keeps_answering_then_exits_0(small_zip, photo, tmp_path):
    replica = cluster.Replica("drain", free_port(), [str(small_zip), "--drain-delay", "8"], tmp_path / "serve.log")
    replica.start()
    try:
        replica.wait_serving()
        seen: list[str] = []
        watcher = watch_health(replica.address, seen)
        with PredictionClient(replica.address, max_retries=0) as client:
            assert client.score_image(photo).shape == (10,)
            replica.process.send_signal(signal.SIGTERM)
            # NOT_SERVING comes first, while the process still answers: calls made during the drain delay
            # (8 s: the test does not race it) all get their answers
            while "NOT_SERVING" not in seen:
                assert replica.process.poll() is None, replica.log_tail()
                watcher.join(0.05)
            with ThreadPoolExecutor(4) as pool:
                answers = list(pool.map(lambda _: client.score_images([photo] * 16), range(4)))
        assert [answer.shape for answer in answers] == [(16, 10)] * 4
        assert replica.wait(120) == 0, replica.log_tail()
        assert seen[0] == "SERVING" and seen[-1] == "NOT_SERVING"
        assert replica.log_tail(1) == "stopped"
    finally:
        replica.stop()
