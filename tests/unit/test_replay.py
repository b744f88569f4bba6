"""Unit tests of workers.replay on the real IRC logs of ../shared/data."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from contracts import (
    ConversationUpserted,
    MessageSubmitted,
    MessageType,
    ReceiptReported,
    Topics,
    UserUpserted,
)
from workers.replay import Line, Plan, irc_plan, parse_irc, plan_for, slack_plan

IRC = Path(__file__).parents[2].parent / "shared" / "data" / "irc"
NEW_DOMAINS = IRC / "new-domains"
UBUNTU_TEST = IRC / "ubuntu-test"
RAW_LOG = UBUNTU_TEST / "2016-06-08_07.raw.txt"
LOGS = ("rust.0", "stripe.1", "ubuntu-meeting.0")


@pytest.fixture(scope="module")
def new_domains() -> Path:
    """The shared IRC data folder; its absence is a failure, never a skip."""
    missing = [
        name for name in LOGS if not (NEW_DOMAINS / f"{name}.ascii.txt").is_file()
    ]
    if missing:
        pytest.fail(
            f"the shared IRC logs are missing from {NEW_DOMAINS} "
            f"({', '.join(missing)}); check out ../shared/data beside the repo",
            pytrace=False,
        )
    return NEW_DOMAINS


@pytest.fixture(scope="module")
def ubuntu(new_domains: Path) -> list[Line]:
    return list(parse_irc(new_domains / "ubuntu-meeting.0.ascii.txt"))


@pytest.fixture(scope="module")
def plan(new_domains: Path) -> Plan:
    return irc_plan(sorted(new_domains.glob("*.ascii.txt")), Topics())


def _messages(plan: Plan) -> list[MessageSubmitted]:
    return [p.event for p in plan.traffic if isinstance(p.event, MessageSubmitted)]


def _links(new_domains: Path, log: str) -> list[tuple[int, int]]:
    """The annotation's links as (smaller, larger) line numbers, self-links out."""
    links = []
    for raw in (new_domains / f"{log}.annotation.txt").read_text().splitlines():
        a, b = sorted(int(x) for x in raw.split()[:2])
        if a != b:
            links.append((a, b))
    return links


def test_parse_irc_yields_every_line(ubuntu: list[Line]) -> None:
    """All 1,200 lines of ubuntu-meeting.0 parse, numbered from 0."""
    assert list(range(1200)) == [line.number for line in ubuntu]


def test_parse_irc_finds_the_27_renames(ubuntu: list[Line]) -> None:
    """The 27 '=== a is now known as b' lines become renames, not messages."""
    renames = [line for line in ubuntu if line.rename is not None]

    assert 27 == len(renames)
    assert all(line.kind is None and line.nick is None for line in renames)
    assert ("yofel_", "yofel") == renames[0].rename


def test_parse_irc_reads_every_kind(ubuntu: list[Line]) -> None:
    """TEXT, /me ACTION and -bot- NOTICE lines are told apart, as SOURCE.md counts."""
    kinds = Counter(line.kind for line in ubuntu)

    assert {
        MessageType.TEXT: 1121,
        MessageType.ACTION: 46,
        MessageType.NOTICE: 6,
        None: 27,
    } == kinds


def test_parse_irc_reads_nick_text_and_time(ubuntu: list[Line]) -> None:
    """A line's channel, nick, text and UTC minute come from the log."""
    first = ubuntu[0]

    assert ("ubuntu-meeting", "rodrigo_", "the new gnome-control-center panel?") == (
        first.channel,
        first.nick,
        first.text,
    )
    assert "2010-11-08T13:21:00+00:00" == first.at.isoformat()


def test_parse_irc_reads_actions_and_notices(ubuntu: list[Line]) -> None:
    """An ACTION's nick follows the '*', a NOTICE's sits between dashes."""
    action = next(line for line in ubuntu if line.kind is MessageType.ACTION)
    notice = next(line for line in ubuntu if line.kind is MessageType.NOTICE)

    assert (
        "jdstrand",
        "finds it odd how often NFS gets borked in the dev release",
    ) == (
        action.nick,
        action.text,
    )
    assert "ubottu" == notice.nick


def test_parse_irc_leaves_no_trailing_spaces(ubuntu: list[Line]) -> None:
    """The one trailing space most lines end with is not part of the text."""
    assert [] == [line.number for line in ubuntu if line.text != line.text.rstrip()]


def test_timeless_lines_keep_their_own_date(
    new_domains: Path, ubuntu: list[Line]
) -> None:
    """A line without a clock is never placed on an earlier day than it says."""
    raw = (new_domains / "ubuntu-meeting.0.ascii.txt").read_text().splitlines()
    dates = {line.number: raw[line.number].split()[1] for line in ubuntu}

    assert [] == [
        line.number
        for line in ubuntu
        if line.at.date().isoformat() != dates[line.number]
    ]


def test_parse_irc_times_never_go_back(ubuntu: list[Line]) -> None:
    """Line times are in log order."""
    times = [line.at for line in ubuntu]

    assert sorted(times) == times


def test_parse_irc_raises_on_a_line_it_cannot_read(tmp_path: Path) -> None:
    """A line that is not an IRC log line raises, naming the file and line."""
    log = tmp_path / "bad.ascii.txt"
    log.write_text("chan 2024-05-01 [12:00] <ada> hi \nthis is not irc\n")

    with pytest.raises(ValueError, match=r"bad\.ascii\.txt:2 "):
        list(parse_irc(log))


@pytest.fixture(scope="module")
def raw() -> list[Line]:
    """The ubuntu-test log, whose lines carry only [HH:MM]."""
    if not RAW_LOG.is_file():
        pytest.fail(
            f"the shared IRC log {RAW_LOG} is missing; check out ../shared/data "
            "beside the repo",
            pytrace=False,
        )
    return list(parse_irc(RAW_LOG))


def test_a_raw_log_parses_every_line_of_every_kind(raw: list[Line]) -> None:
    """1,430 messages, 6 actions and 64 nick changes, as its SOURCE.md counts."""
    kinds = Counter(line.kind for line in raw)

    assert list(range(1500)) == [line.number for line in raw]
    assert {MessageType.TEXT: 1430, MessageType.ACTION: 6, None: 64} == kinds
    assert 64 == sum(1 for line in raw if line.rename is not None)
    assert 176 == len({line.nick for line in raw if line.nick})


def test_a_raw_log_reads_its_first_line(raw: list[Line]) -> None:
    """`[21:16] <lestus> o/` is a message on the day before the file's name."""
    first = raw[0]

    assert ("ubuntu-test", "lestus", "o/", MessageType.TEXT) == (
        first.channel,
        first.nick,
        first.text,
        first.kind,
    )
    assert "2016-06-07T21:16:00+00:00" == first.at.isoformat()


def test_a_raw_log_dates_come_from_its_name_and_midnight(raw: list[Line]) -> None:
    """The name pins line 1000 to 07:00 on 2016-06-08; the wrap at 384 is midnight."""
    assert [
        "2016-06-07T23:59:00+00:00",
        "2016-06-08T00:00:00+00:00",
        "2016-06-08T07:00:00+00:00",
        "2016-06-08T13:35:00+00:00",
    ] == [raw[n].at.isoformat() for n in (383, 384, 1000, 1499)]
    assert sorted(line.at for line in raw) == [line.at for line in raw]


def test_a_raw_logs_rename_takes_the_time_of_the_line_before(
    raw: list[Line],
) -> None:
    """A nick change has no clock of its own."""
    first = next(line for line in raw if line.rename is not None)

    assert raw[first.number - 1].at == first.at


def test_a_raw_action_has_its_nick_and_text(raw: list[Line]) -> None:
    """`[HH:MM]  * nick text` (two spaces) is an ACTION."""
    action = next(line for line in raw if line.kind is MessageType.ACTION)
    text = RAW_LOG.read_text(encoding="utf-8").splitlines()[action.number]

    assert f"* {action.nick} {action.text}" == text.split("  ", 1)[1].rstrip()


def test_a_raw_log_folder_replays_with_its_reply_links() -> None:
    """plan_for finds *.raw.txt in a folder; 398 messages have a parent."""
    plan = plan_for([UBUNTU_TEST], Topics())
    replies = [m for m in _messages(plan) if m.reply_to_id is not None]

    assert (1436, 64, 1) == (plan.messages, plan.user_updates, plan.conversations)
    assert 398 == len(replies)


def test_a_raw_log_whose_name_names_an_hour_it_lacks_is_refused(
    tmp_path: Path,
) -> None:
    """The date cannot be inferred, so the replay says why instead of guessing."""
    log = tmp_path / "2024-05-01_07.raw.txt"
    log.write_text("[21:16] <ada> hi\n[21:17] <bob> hello\n")

    with pytest.raises(ValueError, match=r"2024-05-01_07\.raw\.txt names hour 07"):
        list(parse_irc(log))


def test_plan_holds_every_message_of_the_three_logs(plan: Plan) -> None:
    """3,573 messages: 1,200 + 1,200 + 1,173 (ubuntu's 27 renames are not)."""
    per_conversation = Counter(m.conversation_id for m in _messages(plan))

    assert 3573 == plan.messages
    assert 3573 == len(_messages(plan))
    assert {
        "irc:#rust": 1200,
        "irc:#stripe": 1200,
        "irc:#ubuntu-meeting": 1173,
    } == per_conversation


def test_plan_turns_renames_into_27_user_updates(plan: Plan) -> None:
    """Each rename is one UserUpserted in the traffic, for a directory user."""
    updates = [p.event for p in plan.traffic if isinstance(p.event, UserUpserted)]
    users = {p.event.id for p in plan.directory if isinstance(p.event, UserUpserted)}

    assert 27 == plan.user_updates
    assert 27 == len(updates)
    assert set() == {u.id for u in updates} - users


def test_plan_has_three_group_conversations(plan: Plan) -> None:
    """One conversation per channel, each listing every user of its log."""
    conversations = [
        p.event for p in plan.directory if isinstance(p.event, ConversationUpserted)
    ]

    assert 3 == plan.conversations
    assert ["#rust", "#stripe", "#ubuntu-meeting"] == sorted(
        c.title for c in conversations
    )


def test_plan_message_ids_are_unique(plan: Plan) -> None:
    """No two messages share an id."""
    ids = [m.id for m in _messages(plan)]

    assert len(ids) == len(set(ids))
    assert ids == plan.message_ids


def test_plan_publishes_messages_to_the_messages_topic_keyed_by_conversation(
    plan: Plan,
) -> None:
    """Messages go to chat.messages.v1 with the conversation id as key."""
    wrong = [
        p
        for p in plan.traffic
        if isinstance(p.event, MessageSubmitted)
        and (p.topic != "chat.messages.v1" or p.key != p.event.conversation_id)
    ]

    assert [] == wrong


def test_plan_receipts_are_derived_and_follow_their_message(plan: Plan) -> None:
    """Every receipt is derived=True and names a message published before it."""
    published: dict[str, str] = {}
    late: list[str] = []
    receipts = 0
    for planned in plan.traffic:
        event = planned.event
        if isinstance(event, MessageSubmitted):
            published[event.id] = event.sender_id
        elif isinstance(event, ReceiptReported):
            receipts += 1
            assert event.derived
            if event.message_id not in published:
                late.append(event.event_id)
            else:
                assert published[event.message_id] != event.recipient_id

    assert [] == late
    assert plan.receipts == receipts
    assert receipts > 0


def test_plan_receipt_event_ids_are_unique(plan: Plan) -> None:
    """A derived receipt is published once per message and reader."""
    ids = [
        p.event.event_id for p in plan.traffic if isinstance(p.event, ReceiptReported)
    ]

    assert len(ids) == len(set(ids))


def test_every_sender_is_a_directory_user(plan: Plan) -> None:
    """Each message's sender is published in the directory, as a participant."""
    users = {p.event.id for p in plan.directory if isinstance(p.event, UserUpserted)}
    participants = {
        p.event.id: set(p.event.participant_ids)
        for p in plan.directory
        if isinstance(p.event, ConversationUpserted)
    }
    messages = _messages(plan)

    assert set() == {m.sender_id for m in messages} - users
    assert [] == [
        m.id for m in messages if m.sender_id not in participants[m.conversation_id]
    ]


def test_directory_comes_before_traffic(plan: Plan) -> None:
    """Users and conversations are published before any message or receipt."""
    kinds = [type(p.event) for p in plan.records]
    first_traffic = len(plan.directory)

    assert {UserUpserted, ConversationUpserted} == set(kinds[:first_traffic])
    assert ConversationUpserted not in kinds[first_traffic:]


def test_reply_to_follows_the_annotations(plan: Plan, new_domains: Path) -> None:
    """The larger line of a link replies to the smaller; self-links start threads."""
    by_id = {m.id: m for m in _messages(plan)}
    replies = 0
    for log in LOGS:
        conversation = f"irc:#{log.split('.')[0]}"
        parents: dict[int, set[int]] = {}
        for a, b in _links(new_domains, log):
            parents.setdefault(b, set()).add(a)
        for child, options in parents.items():
            message = by_id[f"{conversation}:{child}"]
            assert message.reply_to_id in {f"{conversation}:{a}" for a in options}
        replying = [
            m
            for m in by_id.values()
            if m.conversation_id == conversation and m.reply_to_id
        ]
        assert sorted(parents) == sorted(int(m.id.rsplit(":", 1)[1]) for m in replying)
        replies += len(replying)

    assert 181 + 174 + 187 == replies


def test_a_known_reply_link(plan: Plan) -> None:
    """rust.0 links 1000-1001: message 1001 replies to message 1000."""
    by_id = {m.id: m for m in _messages(plan)}

    assert "irc:#rust:1000" == by_id["irc:#rust:1001"].reply_to_id


def test_replies_point_at_earlier_messages_of_the_plan(plan: Plan) -> None:
    """Every reply_to_id names a message of the same log published before it."""
    seen: set[str] = set()
    dangling = []
    for message in _messages(plan):
        if message.reply_to_id is not None and message.reply_to_id not in seen:
            dangling.append(message.id)
        seen.add(message.id)

    assert [] == dangling


def test_slack_export_gives_every_message_and_no_joins() -> None:
    """The real Slack export: 147 messages, joins and bot installs left out."""
    folder = Path(__file__).parents[2].parent / "shared" / "data" / "slack"
    if not (folder / "testarchive" / "channels.json").exists():
        pytest.fail(f"the real Slack export is missing under {folder}")
    plan = slack_plan(folder / "testarchive", Topics())
    kinds = Counter(
        p.event.type.value
        for p in plan.traffic
        if isinstance(p.event, MessageSubmitted)
    )
    bots = {
        p.event.id
        for p in plan.directory
        if isinstance(p.event, UserUpserted) and p.event.is_bot
    }

    assert (147, 2, 11) == (plan.messages, plan.conversations, plan.skipped_lines)
    assert {"TEXT": 50, "NOTICE": 94, "FILE": 3} == dict(kinds)
    assert 3 == len(bots)
    assert len(plan.message_ids) == len(set(plan.message_ids))
