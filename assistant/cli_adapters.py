"""`helpdesk adapters ...` and `helpdesk ab ...`: the registry of trained adapters, the evaluation
gate, promote and roll back, A/B tests."""
from __future__ import annotations

import sys

from assistant.cli_common import actor_of, emit, open_services
from assistant.monitoring import ab_status, rate_text
from finetune.gate import extractive_line


def print_gate(gate: dict, out=sys.stdout) -> None:
    def cell(value) -> str:
        return "-" if value is None else str(value)

    on = gate["evaluated_on"]
    print(f"gate: {gate['candidate']} against {gate['baseline']} on {on['questions']} held-out questions "
          f"({on['question_file']}), {on['review_rows']} held-out dataset rows, {on['probes']} guardrail probes",
          file=out)
    print(f"{'':32} {gate['baseline']:>16} {gate['candidate']:>16} {'change':>8}", file=out)
    for label, base, cand, change in gate["table"]:
        print(f"{label:32} {cell(base):>16} {cell(cand):>16} {cell(change):>8}", file=out)
    low, high = gate["ci"]
    print(f"score change {gate['difference']:+.4f} (95% paired bootstrap [{low:+.4f}, {high:+.4f}], "
          f"margin {gate['margin']}): {'PASSED' if gate['passed'] else 'FAILED'}", file=out)
    for reason in gate["reasons"]:
        print(f"  - {reason}", file=out)
    if (line := extractive_line(gate)) is not None:
        print(line, file=out)


def _summary(adapter: dict) -> dict:
    gate = adapter["gate"]
    return {"version": adapter["version"], "status": "serving" if adapter["serving"] else adapter["status"],
            "base_model": adapter["base_model"], "dataset": adapter["dataset"],
            "gate": None if gate is None else ("passed" if gate["passed"] else "failed"),
            "trained_by": adapter["trained_by"], "created_at": adapter["created_at"],
            "erased_rows": adapter.get("erased_rows", 0)}


def cmd_list(args) -> int:
    services = open_services(args)
    adapters = services.adapters.list()
    if args.json:
        for adapter in adapters:
            emit(_summary(adapter))
        return 0
    serving = services.adapters.serving_version()
    print(f"serving: {serving or 'the base model'}")
    for adapter in adapters:
        s = _summary(adapter)
        erased = f"  retrain: {adapter['erased_rows']} of its rows erased" if adapter.get("erased_rows") else ""
        print(f"{s['version']:28} {s['status']:9} gate={s['gate'] or '-':7} dataset={s['dataset'] or '-'} "
              f"by {s['trained_by']} {s['created_at'][:19]}{erased}")
    return 0


def cmd_show(args) -> int:
    registry = open_services(args).adapters
    adapter = registry.get(args.version) | {"events": registry.events(args.version)}
    if args.json:
        emit(adapter)
        return 0
    s = _summary(adapter)
    print(f"{s['version']}: {s['status']}, base {adapter['base_model']} ({adapter['base_model_hash']}), "
          f"dataset {adapter['dataset']}, trained by {adapter['trained_by']} at {adapter['created_at'][:19]}")
    print(f"config: {adapter['config']}")
    print(f"training metrics: {adapter['metrics']}")
    for event in adapter["events"]:
        why = f" ({'forced: ' if event['forced'] else ''}{event['reason']})" if event["reason"] else ""
        undone = f", rolled back {event['undone_at'][:19]}" if event["undone_at"] else ""
        print(f"{event['at'][:19]} {event['action']} by {event['actor']}{why}{undone}")
    if adapter["gate"]:
        print_gate(adapter["gate"])
    else:
        print(f"not gated yet: helpdesk adapters gate {args.version}")
    return 0


def cmd_gate(args) -> int:
    from assistant.gate import gate_version

    gate = gate_version(open_services(args), args.version, args.against, args.questions, args.rows, args.margin)
    emit(gate) if args.json else print_gate(gate)
    return 0


def cmd_promote(args) -> int:
    services = open_services(args)
    adapter = services.releases.promote(actor_of(args), args.version, args.force, args.reason)
    emit(_summary(adapter)) if args.json else print(
        f"adapter {args.version} serves now; the running server uses it from its next turn")
    return 0


def cmd_rollback(args) -> int:
    now = open_services(args).releases.rollback(actor_of(args), args.reason)
    emit({"serving": now}) if args.json else print(f"rolled back: {now or 'the base model'} serves now")
    return 0


def cmd_archive(args) -> int:
    adapter = open_services(args).releases.archive(actor_of(args), args.version)
    emit(_summary(adapter)) if args.json else print(f"adapter {args.version} archived")
    return 0


def print_ab(status: dict | None) -> None:
    if status is None:
        print("no A/B test has run: helpdesk ab start VERSION --share 0.2")
        return
    test = status["test"]
    state = "running" if status["running"] else f"stopped {test['stopped_at'][:19]}"
    print(f"A/B {test['id']}: {test['candidate']} on {test['share']:.0%} of conversations against "
          f"{test['baseline'] or 'the base model'}, since {test['started_at'][:19]} ({state})")
    cand, base = status["arms"]["candidate"], status["arms"]["baseline"]

    print(f"{'':16} {'baseline ' + str(base['adapter']):>32} {'candidate ' + str(cand['adapter']):>32}")
    for key in ("conversations", "turns"):
        print(f"{key:16} {base[key]:>32} {cand[key]:>32}")
    for key in ("thumbs_up", "flag_rate", "answer_rate", "groundedness"):
        print(f"{key:16} {rate_text(base[key]):>32} {rate_text(cand[key]):>32}")
    print(f"{'latency p50 ms':16} {str(base['latency_ms']['p50']):>32} {str(cand['latency_ms']['p50']):>32}")


def cmd_ab_start(args) -> int:
    test = open_services(args).releases.start_ab(actor_of(args), args.version, args.share, args.force, args.reason)
    emit(test) if args.json else print(
        f"A/B {test['id']} started: {args.version} serves {args.share:.0%} of conversations from their next turn")
    return 0


def cmd_ab_status(args) -> int:
    status = ab_status(open_services(args))
    emit(status) if args.json else print_ab(status)
    return 0


def cmd_ab_stop(args) -> int:
    services = open_services(args)
    services.releases.stop_ab(actor_of(args))
    status = ab_status(services)
    emit(status) if args.json else print_ab(status)
    return 0


def add_gate_options(q) -> None:
    q.add_argument("--questions", type=int, default=60, help="held-out questions to compare on (0: all)")
    q.add_argument("--rows", type=int, default=20, help="held-out dataset rows to compare on (0: all)")
    q.add_argument("--margin", type=float, default=0.02, help="how much higher the candidate's score must be")


def add_parsers(sub) -> None:
    p = sub.add_parser("adapters", help="trained adapters: the gate, promote, roll back, archive").add_subparsers(
        dest="what", required=True)
    q = p.add_parser("list", help="every version, newest first, and which one serves")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_list)
    q = p.add_parser("show", help="one version's provenance, history and gate table")
    q.add_argument("version")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_show)
    q = p.add_parser("gate", help="compare a version with the serving one on held-out data; stored with it")
    q.add_argument("version")
    q.add_argument("--against", help="a version, or 'base' (default: the one serving now)")
    add_gate_options(q)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_gate)
    q = p.add_parser("promote", help="serve a version that passed the gate (the server switches at once)")
    q.add_argument("version")
    q.add_argument("--force", action="store_true", help="promote one that failed or skipped the gate")
    q.add_argument("--reason", help="why (required with --force; recorded)")
    q.add_argument("--as", dest="as_user", metavar="NAME", help="who promotes (recorded)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_promote)
    q = p.add_parser("rollback", help="undo the newest promotion: what served before serves again")
    q.add_argument("--reason")
    q.add_argument("--as", dest="as_user", metavar="NAME")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_rollback)
    q = p.add_parser("archive", help="retire a version that is not serving; it can no longer be promoted")
    q.add_argument("version")
    q.add_argument("--as", dest="as_user", metavar="NAME")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_archive)

    p = sub.add_parser("ab", help="A/B test a candidate adapter on a share of live conversations").add_subparsers(
        dest="what", required=True)
    q = p.add_parser("start", help="serve VERSION to a share of conversations (sticky per conversation)")
    q.add_argument("version")
    q.add_argument("--share", type=float, default=0.2, help="the candidate's share of conversations (0-1)")
    q.add_argument("--force", action="store_true", help="test one that failed or skipped the gate")
    q.add_argument("--reason", help="why (required with --force)")
    q.add_argument("--as", dest="as_user", metavar="NAME")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_ab_start)
    q = p.add_parser("status", help="each arm's figures side by side, with 95% intervals")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_ab_status)
    q = p.add_parser("stop", help="end the test: every conversation gets the promoted adapter again")
    q.add_argument("--as", dest="as_user", metavar="NAME")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_ab_stop)
