"""`helpdesk users ...`, `helpdesk token ...` and `helpdesk audit`: who may use the service, their
API tokens, and the audit log. Passwords and tokens are printed once and stored only hashed."""
from __future__ import annotations

import sys

from assistant.actor import ROLES
from assistant.audit import ACTIONS
from assistant.cli_common import actor_of, emit, open_services


def cmd_users_add(args) -> int:
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else None
    user, password = open_services(args).users.add(actor_of(args), args.name, args.role, password)
    if args.json:
        emit(user.as_dict() | ({"password": password} if not args.password_stdin else {}))
    else:
        print(f"added {user.name} ({user.role})")
        if not args.password_stdin:
            print(f"one-time password (shown once, stored only as a hash): {password}")
    return 0


def cmd_users_list(args) -> int:
    users = open_services(args).users.list(actor_of(args), args.removed)
    if args.json:
        emit(users)
        return 0
    for u in users:
        gone = f"  removed {u['removed_at'][:19]}" if u.get("removed_at") else ""
        print(f"{u['name']:24} {u['role']:9} since {u['created_at'][:19]}  {u['tokens']} API tokens{gone}")
    return 0


def cmd_users_set_role(args) -> int:
    user = open_services(args).users.set_role(actor_of(args), args.name, args.role)
    emit(user.as_dict()) if args.json else print(f"{user.name} is now {user.role}")
    return 0


def cmd_users_password(args) -> int:
    password = open_services(args).users.reset_password(actor_of(args), args.name)
    emit({"name": args.name, "password": password}) if args.json else print(
        f"new one-time password for {args.name} (shown once): {password}")
    return 0


def cmd_users_remove(args) -> int:
    open_services(args).users.remove(actor_of(args), args.name)
    emit({"removed": args.name}) if args.json else print(f"removed {args.name}; their API tokens are revoked")
    return 0


def cmd_token_create(args) -> int:
    token_id, token = open_services(args).users.create_token(actor_of(args), args.name, args.label)
    if args.json:
        emit({"id": token_id, "user": args.name, "token": token})
    else:
        print(f"API token {token_id} for {args.name} (shown once; send it as 'Authorization: Bearer ...'):")
        print(token)
    return 0


def cmd_token_list(args) -> int:
    tokens = open_services(args).users.tokens(actor_of(args), args.name)
    if args.json:
        emit(tokens)
        return 0
    for t in tokens:
        state = f"revoked {t['revoked_at'][:19]}" if t["revoked_at"] else "live"
        print(f"{t['id']}  {t['user_name']:24} {t['created_at'][:19]}  {state:28} {t['label']}")
    return 0


def cmd_token_revoke(args) -> int:
    open_services(args).users.revoke_token(actor_of(args), args.token_id)
    emit({"revoked": args.token_id}) if args.json else print(f"token {args.token_id} revoked")
    return 0


def cmd_audit(args) -> int:
    audit = open_services(args).audit
    filters = {"action": args.action, "who": args.user, "since": args.since, "until": args.until}
    if args.csv:
        sys.stdout.write(audit.csv(actor_of(args), limit=args.limit, **filters))
        return 0
    entries = audit.entries(actor_of(args), limit=args.limit, **filters)
    if args.json:
        emit(entries)
        return 0
    for e in entries:
        detail = " ".join(f"{k}={v}" for k, v in sorted(e["detail"].items()))
        print(f"{e['at'][:19]}  {e['actor'] or '(anonymous)':24} {e['action']:20} {e['target'] or '':32} {detail}")
    return 0


def cmd_erase(args) -> int:
    services = open_services(args)
    if args.session:
        erased = services.erasure.erase_session(actor_of(args), args.session)
    else:
        erased = services.erasure.erase_customer(actor_of(args), args.customer)
    if args.json:
        emit(erased.as_dict())
        return 0
    print(f"erased {erased.sessions} conversations: {erased.exchanges} exchanges, {erased.feedback} feedback, "
          f"{erased.review_items} review items, {erased.dataset_rows} dataset rows ({erased.dataset_files} files "
          f"rewritten), {erased.label_rows} label rows, {erased.vault_entries} vault entries")
    for version in erased.adapters_marked:
        print(f"adapter {version} was trained on erased rows: retrain without them "
              "(helpdesk dataset build, then helpdesk train generator)")
    return 0


def cmd_purge(args) -> int:
    services = open_services(args)
    days = args.days if args.days is not None else services.settings.retention.days
    summary = services.erasure.purge(actor_of(args), days)
    emit(summary) if args.json else print(
        f"purged {summary['sessions']} conversations older than {days} days ({summary['exchanges']} exchanges) "
        f"and {summary['vault_expired']} expired vault entries")
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("users", help="users and their roles (agent, reviewer, admin)").add_subparsers(
        dest="what", required=True)
    q = p.add_parser("add", help="add a user; prints a one-time password")
    q.add_argument("name")
    q.add_argument("--role", choices=ROLES, required=True)
    q.add_argument("--password-stdin", action="store_true", help="read the password from stdin instead")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_users_add)
    q = p.add_parser("list", help="users, their roles and live API tokens")
    q.add_argument("--removed", action="store_true", help="include removed users")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_users_list)
    q = p.add_parser("set-role", help="change a user's role (takes effect at their next request)")
    q.add_argument("name")
    q.add_argument("role", choices=ROLES)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_users_set_role)
    q = p.add_parser("password", help="reset a user's password; prints a new one-time password")
    q.add_argument("name")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_users_password)
    q = p.add_parser("remove", help="remove a user and revoke their tokens (the name is never reused)")
    q.add_argument("name")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_users_remove)

    p = sub.add_parser("token", help="API tokens (Authorization: Bearer ...)").add_subparsers(
        dest="what", required=True)
    q = p.add_parser("create", help="a token for a user; printed once, stored hashed")
    q.add_argument("name")
    q.add_argument("--label", help="what it is for, e.g. 'zendesk bridge'")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_token_create)
    q = p.add_parser("list", help="tokens (ids, never the tokens themselves)")
    q.add_argument("name", nargs="?")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_token_list)
    q = p.add_parser("revoke", help="revoke a token at once")
    q.add_argument("token_id")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_token_revoke)

    p = sub.add_parser("erase", help="erase a conversation, or everything about a customer (GDPR/CCPA)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--session", help="a conversation id")
    which.add_argument("--customer", metavar="VALUE", help="an e-mail address, phone number or name the customer "
                       "gave; found through keyed hashes, never stored")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_erase)

    p = sub.add_parser("purge", help="apply retention now: old conversations and expired vault entries")
    p.add_argument("--days", type=float, help="default: retention.days")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_purge)

    p = sub.add_parser("audit", help="the audit log, newest first")
    p.add_argument("--action", choices=ACTIONS)
    p.add_argument("--user", help="the acting user")
    p.add_argument("--since", help="ISO date or time, inclusive")
    p.add_argument("--until", help="ISO date or time, exclusive")
    p.add_argument("--limit", type=int, default=200)
    p.add_argument("--csv", action="store_true", help="CSV for a spreadsheet")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_audit)
