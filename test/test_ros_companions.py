"""The companion publisher (plain threading): order, completeness, waiting, shutdown."""

import threading
import time

import pytest
from reachability_ros.ros.companions import CompanionPublisher


class Recorder:
    """Steps that record what ran, and when, and which requests were being answered."""

    def __init__(self, n_steps=3, step_s=0.0, fail_on=None):
        self.n_steps, self.step_s, self.fail_on = n_steps, step_s, fail_on
        self.published = []
        self.step_times = []
        self.lock = threading.Lock()

    def steps(self, job):
        for i in range(self.n_steps):
            if job == self.fail_on:
                raise RuntimeError(f'job {job} fails')
            if self.step_s:
                time.sleep(self.step_s)
            with self.lock:
                self.step_times.append(time.monotonic())
            yield i
        with self.lock:
            self.published.append(job)


def wait_for(pred, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while not pred() and time.monotonic() < deadline:
        time.sleep(0.001)
    return pred()


def test_jobs_are_published_in_submission_order_and_none_is_lost():
    rec = Recorder()
    pub = CompanionPublisher(rec.steps, settle_s=0.0)
    for i in range(300):
        with pub.answering():
            assert pub.submit(i)
    assert wait_for(lambda: len(rec.published) == 300)
    assert rec.published == list(range(300))
    assert pub.close(1.0) and pub.published == 300 and pub.failed == 0


def test_jobs_from_many_threads_are_all_published_each_threads_in_its_order():
    rec = Recorder(n_steps=1)
    pub = CompanionPublisher(rec.steps, settle_s=0.0)

    def producer(k):
        for i in range(50):
            with pub.answering():
                pub.submit((k, i))
    threads = [threading.Thread(target=producer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wait_for(lambda: len(rec.published) == 200)
    for k in range(4):
        assert [i for kk, i in rec.published if kk == k] == list(range(50))
    assert pub.close(1.0)


def test_no_step_runs_while_a_request_is_being_answered():
    rec = Recorder(n_steps=2)
    pub = CompanionPublisher(rec.steps, settle_s=0.0)
    with pub.answering():
        pub.submit('a')
        time.sleep(0.05)
        assert rec.step_times == [] and pub.pending == 1  # held back while answering
        t_end = time.monotonic()
    assert wait_for(lambda: rec.published == ['a'])
    assert min(rec.step_times) >= t_end
    assert pub.close(1.0)


def test_steps_wait_for_the_settle_time_after_the_last_answer():
    rec = Recorder(n_steps=1)
    pub = CompanionPublisher(rec.steps, settle_s=0.05)
    with pub.answering():
        pub.submit('a')
        t_end = time.monotonic()
    assert wait_for(lambda: rec.published == ['a'])
    assert rec.step_times[0] - t_end >= 0.045
    assert pub.close(1.0)


def test_a_long_backlog_stops_waiting_for_idle():
    rec = Recorder(n_steps=1)
    pub = CompanionPublisher(rec.steps, settle_s=0.0, backlog_limit=5)
    with pub.answering():  # a request that never ends: the backlog must still drain
        for i in range(20):
            pub.submit(i)
        assert wait_for(lambda: len(rec.published) >= 15)
    assert wait_for(lambda: len(rec.published) == 20)
    assert rec.published == list(range(20))
    assert pub.close(1.0)


def test_a_failing_job_is_reported_and_the_next_ones_still_run():
    errors = []
    rec = Recorder(fail_on=1)
    pub = CompanionPublisher(rec.steps, settle_s=0.0, on_error=errors.append)
    for i in range(3):
        pub.submit(i)
    assert wait_for(lambda: rec.published == [0, 2])
    assert len(errors) == 1 and 'job 1 fails' in str(errors[0])
    assert pub.failed == 1 and pub.published == 2
    assert pub.close(1.0)


def test_close_publishes_what_is_queued_then_refuses_new_jobs():
    rec = Recorder(n_steps=2)
    pub = CompanionPublisher(rec.steps, settle_s=10.0)  # would wait long for idle
    with pub.answering():
        for i in range(5):
            pub.submit(i)
    assert pub.close(2.0)  # closing does not wait for the settle time
    assert rec.published == list(range(5))
    assert not pub.submit(99) and pub.pending == 0


@pytest.mark.parametrize('step_s', [0.5])
def test_close_returns_within_its_timeout_when_a_step_hangs(step_s):
    rec = Recorder(n_steps=4, step_s=step_s)
    pub = CompanionPublisher(rec.steps, settle_s=0.0)
    pub.submit('slow')
    time.sleep(0.05)
    t0 = time.monotonic()
    assert not pub.close(0.1)  # still running: reported, not waited for
    assert time.monotonic() - t0 < 0.3
    assert pub._thread.daemon  # and it cannot hold the process at exit
