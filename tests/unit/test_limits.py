from shared.limits import RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_client_gets_its_burst_then_waits_for_tokens() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_minute=60, burst=3, clock=clock)
    assert [limiter.take("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.take("a") == 1.0  # one token a second
    assert limiter.take("b") == 0  # another client has its own bucket
    clock.now += 1.0
    assert limiter.take("a") == 0
    clock.now += 3600
    assert [limiter.take("a") for _ in range(3)] == [0, 0, 0]  # refills up to the burst only
    assert limiter.take("a") > 0


def test_memory_is_bounded_by_forgetting_the_oldest_clients() -> None:
    limiter = RateLimiter(per_minute=60, burst=1, clock=FakeClock(), max_clients=100)
    for i in range(1000):
        limiter.take(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter.buckets) == 100
