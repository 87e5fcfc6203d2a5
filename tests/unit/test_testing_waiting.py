"""`eventually`, the testing kit's wait: poll until the probe holds, fail by a deadline, saying
what was awaited and what the last attempt saw."""

from __future__ import annotations

import pytest

from shared.testing.waiting import eventually


class Answers:
    """A probe that gives its answers in turn, then the last one for ever."""

    def __init__(self, *answers: object) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def __call__(self) -> object:
        self.calls += 1
        answer = self.answers[min(self.calls, len(self.answers)) - 1]
        if isinstance(answer, BaseException):
            raise answer
        return answer


async def test_eventually_returns_the_first_truthy_answer() -> None:
    probe = Answers(None, [], {"status": "confirmed"})

    assert await eventually(probe, interval=0) == {"status": "confirmed"}
    assert probe.calls == 3


async def test_an_assertion_failing_in_the_probe_means_not_yet() -> None:
    probe = Answers(AssertionError("pending"), "confirmed")

    assert await eventually(probe, interval=0) == "confirmed"


async def test_a_timeout_names_what_was_awaited_and_the_last_answer() -> None:
    with pytest.raises(AssertionError) as failure:
        await eventually(Answers([]), timeout=0.2, what="a confirmed order")

    assert str(failure.value) == (
        "timed out after 0.2s waiting for a confirmed order; the last attempt returned []"
    )


async def test_a_timeout_gives_the_last_assertion_of_the_probe() -> None:
    with pytest.raises(AssertionError, match=r"the last attempt failed: status is pending$"):
        await eventually(Answers(AssertionError("status is pending")), timeout=0.2)


async def test_a_timeout_without_a_description_names_the_probe() -> None:
    async def order_confirmed() -> bool:
        return False

    with pytest.raises(AssertionError, match=r"waiting for .*order_confirmed; "):
        await eventually(order_confirmed, timeout=0.1)


async def test_any_other_error_in_the_probe_fails_at_once() -> None:
    probe = Answers(ConnectionRefusedError("no service"))

    with pytest.raises(ConnectionRefusedError):
        await eventually(probe, timeout=30)
    assert probe.calls == 1
