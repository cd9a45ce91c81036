"""The bot remembers a long conversation within a fixed prompt budget."""

from typing import Any

from conversations.models import Conversation
from support_bot.bot.embeddings import count_tokens
from tests.fake_llm import Reply
from tests.widget import ask, resume


def history_tokens(request: dict[str, Any]) -> int:
    # Everything but the system prompt and the question itself.
    return sum(count_tokens(m["content"]) for m in request["messages"][1:-1])


async def test_old_turns_fold_into_a_summary_and_the_prompt_stays_flat(
    connect: Any, kb: Any, llm: Any, settings: Any
) -> None:
    settings.MEMORY_TOKEN_BUDGET = 120
    # This test is about memory: every question is answered, whatever its score.
    settings.RETRIEVAL_MIN_SCORE = settings.CONFIDENCE_THRESHOLD = 0.0
    card = kb["How long does a new card take to arrive?"].id
    llm.default = Reply(chunks=["It is on ", f"its way [A{card}]."])
    widget = await connect()
    await resume(widget)

    questions = [
        "When will my new card arrive? I ordered it {} days ago.",
        "How long does card delivery take, it has been {} days?",
        "My new card has not come yet after {} days, when will it?",
    ]
    for turn in range(12):
        await ask(widget, questions[turn % 3].format(turn + 2))

    conversation = await Conversation.objects.aget()
    assert conversation.summary_until_seq > 0
    assert conversation.summary, "older turns are summarised"
    answers = [r for r in llm.requests if r.get("stream")]
    assert all(history_tokens(r) <= 120 for r in answers)
    last_system_prompt = answers[-1]["messages"][0]["content"]
    assert conversation.summary in last_system_prompt
    assert conversation.memory_tokens <= 120 + 60, "the fold keeps up"


async def test_offline_memory_summarises_what_the_customer_asked(
    connect: Any, kb: Any, settings: Any
) -> None:
    settings.MEMORY_TOKEN_BUDGET = 40
    widget = await connect()
    await resume(widget)

    for question in ["I lost my card", "How do I change my PIN?", "When will it come?"]:
        await ask(widget, question)

    conversation = await Conversation.objects.aget()
    assert "The customer asked: I lost my card" in conversation.summary
