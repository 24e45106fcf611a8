"""Admin tab: users and roles, API tokens (shown once), and the audit log with filters and a
CSV export, all through the services (which check the role and write the audit rows)."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

import gradio as gr

from assistant.actor import ROLES
from assistant.audit import ACTIONS
from core.errors import HelpdeskError

USER_HEADERS = ["user", "role", "created", "API tokens"]
TOKEN_HEADERS = ["token id", "user", "label", "created", "revoked"]
AUDIT_HEADERS = ["at", "actor", "role", "via", "action", "target", "detail"]
ANY = "(any)"


def user_rows(services, actor) -> list[list]:
    return [[u["name"], u["role"], u["created_at"][:19], u["tokens"]] for u in services.users.list(actor)]


def token_rows(services, actor) -> list[list]:
    return [[t["id"], t["user_name"], t["label"], t["created_at"][:19], (t["revoked_at"] or "")[:19]]
            for t in services.users.tokens(actor)]


def audit_filters(action: str | None, who: str | None, since: str | None, until: str | None) -> dict:
    return {"action": None if action in (None, "", ANY) else action, "who": (who or "").strip() or None,
            "since": (since or "").strip() or None, "until": (until or "").strip() or None}


def audit_rows(services, actor, **filters) -> list[list]:
    return [[e["at"][:19], e["actor"] or "(anonymous)", e["role"] or "", e["via"] or "", e["action"],
             e["target"] or "", ", ".join(f"{k}={v}" for k, v in sorted(e["detail"].items()))]
            for e in services.audit.entries(actor, limit=500, **filters)]


def build_tab(services, actor_of: Callable[[gr.Request], object]) -> None:
    """The tab's components and events; called inside `with gr.Tab(...)`."""
    gr.Markdown("### Users\nAn admin can do everything a reviewer can, a reviewer everything an agent can. "
                "A new user's password, and a new API token, are shown here once and stored only as hashes.")
    users = gr.Dataframe(headers=USER_HEADERS, interactive=False, elem_id="users")
    with gr.Row():
        name = gr.Textbox(label="User", elem_id="user-name", scale=2)
        role = gr.Dropdown(list(ROLES), value="agent", label="Role", elem_id="user-role", scale=1)
        add = gr.Button("Add user", variant="primary", elem_id="user-add", scale=1)
        set_role = gr.Button("Set role", elem_id="user-set-role", scale=1)
        reset = gr.Button("Reset password", elem_id="user-reset", scale=1)
        remove = gr.Button("Remove user", variant="stop", elem_id="user-remove", scale=1)
    with gr.Row():
        label = gr.Textbox(label="Token label (optional)", elem_id="token-label", scale=2)
        create_token = gr.Button("Create API token for the user", elem_id="token-create", scale=1)
        token_id = gr.Textbox(label="Token id", elem_id="token-id", scale=1)
        revoke = gr.Button("Revoke token", variant="stop", elem_id="token-revoke", scale=1)
    secret = gr.Markdown(elem_id="admin-secret")
    tokens = gr.Dataframe(headers=TOKEN_HEADERS, interactive=False, elem_id="tokens")

    gr.Markdown("### Erase a customer's data\nRemoves their conversations everywhere: exchanges, feedback, "
                "review items, vault entries, dataset rows and labels; adapters trained on them are marked "
                "for a retrain. The audit log records counts, never the value.")
    with gr.Row():
        customer = gr.Textbox(label="Customer's e-mail, phone number or name", elem_id="erase-customer", scale=3)
        conversation = gr.Textbox(label="or a conversation id", elem_id="erase-session", scale=2)
        erase = gr.Button("Erase", variant="stop", elem_id="erase", scale=1)
    erase_status = gr.Markdown(elem_id="erase-status")

    gr.Markdown("### Audit log\nEvery login, role and token change, ingest, review decision, dataset, "
                "training run, promotion and erasure; no personal data.")
    with gr.Row():
        f_action = gr.Dropdown([ANY, *ACTIONS], value=ANY, label="Action", elem_id="audit-action")
        f_who = gr.Textbox(label="User", elem_id="audit-who")
        f_since = gr.Textbox(label="From (ISO date)", elem_id="audit-since")
        f_until = gr.Textbox(label="Until (ISO date)", elem_id="audit-until")
        export = gr.Button("Export CSV", elem_id="audit-export")
    audit = gr.Dataframe(headers=AUDIT_HEADERS, interactive=False, wrap=True, elem_id="audit")
    csv_file = gr.File(label="CSV", elem_id="audit-csv")
    filters = [f_action, f_who, f_since, f_until]

    def refresh(action, who, since, until, request: gr.Request):
        actor = actor_of(request)
        if not actor.can("admin"):  # the tab is hidden for them; never fill it
            return gr.update(), gr.update(), gr.update()
        return (user_rows(services, actor), token_rows(services, actor),
                audit_rows(services, actor, **audit_filters(action, who, since, until)))

    def act(do: Callable[[object], str]) -> Callable:
        def handler(user, chosen, given_label, given_id, request: gr.Request):
            try:
                return do(actor_of(request), user, chosen, given_label, given_id)
            except HelpdeskError as exc:
                return f"⚠️ {exc}"
        return handler

    def on_add(actor, user, chosen, _label, _token):
        _, password = services.users.add(actor, (user or "").strip(), chosen)
        return f"✅ Added `{user}` as {chosen}. One-time password (shown once): `{password}`"

    def on_set_role(actor, user, chosen, _label, _token):
        services.users.set_role(actor, (user or "").strip(), chosen)
        return f"✅ `{user}` is now {chosen}."

    def on_reset(actor, user, _role, _label, _token):
        password = services.users.reset_password(actor, (user or "").strip())
        return f"✅ New one-time password for `{user}` (shown once): `{password}`"

    def on_remove(actor, user, _role, _label, _token):
        services.users.remove(actor, (user or "").strip())
        return f"✅ Removed `{user}`; their API tokens are revoked."

    def on_token(actor, user, _role, given_label, _token):
        tid, token = services.users.create_token(actor, (user or "").strip(), given_label)
        return f"✅ Token `{tid}` for `{user}` (shown once): `{token}`"

    def on_revoke(actor, _user, _role, _label, given_id):
        services.users.revoke_token(actor, (given_id or "").strip())
        return f"✅ Token `{given_id}` revoked."

    def on_export(action, who, since, until, request: gr.Request):
        try:
            body = services.audit.csv(actor_of(request), **audit_filters(action, who, since, until))
        except HelpdeskError as exc:
            raise gr.Error(str(exc)) from None
        path = Path(tempfile.mkdtemp(prefix="helpdesk-audit-")) / "audit.csv"
        path.write_text(body, encoding="utf-8")
        return str(path)

    def on_erase(value, session, request: gr.Request):
        try:
            actor = actor_of(request)
            if (session or "").strip():
                erased = services.erasure.erase_session(actor, session.strip())
            else:
                erased = services.erasure.erase_customer(actor, value or "")
        except HelpdeskError as exc:
            return f"⚠️ {exc}", gr.update(), gr.update()
        marked = f" Adapters to retrain: {', '.join(erased.adapters_marked)}." if erased.adapters_marked else ""
        return (f"✅ Erased {erased.sessions} conversations ({erased.exchanges} exchanges, {erased.feedback} "
                f"feedback, {erased.review_items} review items, {erased.dataset_rows} dataset rows, "
                f"{erased.vault_entries} vault entries).{marked}", "", "")

    inputs = [name, role, label, token_id]
    for button, do in ((add, on_add), (set_role, on_set_role), (reset, on_reset), (remove, on_remove),
                       (create_token, on_token), (revoke, on_revoke)):
        button.click(act(do), inputs, secret).then(refresh, filters, [users, tokens, audit])
    for f in filters:
        f.change(refresh, filters, [users, tokens, audit])
    export.click(on_export, filters, csv_file)
    erase.click(on_erase, [customer, conversation], [erase_status, customer, conversation]).then(
        refresh, filters, [users, tokens, audit])
    return refresh, filters, [users, tokens, audit]
