"""`remixbot quota …`: show and manage image quotas (limits, tiers, exemptions, grants, blocks)."""

from __future__ import annotations

import argparse
from typing import Any

from bot.cli._common import cli_settings, print_json
from bot.store import Store
from bot.store.admin import (
    block_dict,
    block_where,
    blocked_text,
    parse_snowflake,
    parse_user_id,
    run_with_store,
    status_dict,
    status_text,
    table,
    unblocked_text,
    user_label,
    when,
)
from bot.store.models import QuotaStatus
from bot.store.periods import PERIODS


def _images(text: str) -> int:
    if text.strip().isdigit():
        return int(text)
    raise argparse.ArgumentTypeError(f"must be a whole number of images (0 or more), not {text!r}")


def _limit(text: str) -> int | None:
    if text.strip().lower() in ("none", "off", "clear"):
        return None
    if text.strip().isdigit():
        return int(text)
    raise argparse.ArgumentTypeError(
        f"a limit must be a whole number of images (0 or more) or 'none', not {text!r}"
    )


def _scope(guild: int | None) -> str:
    """Where a per-user command applies, said plainly (no --guild means direct messages)."""
    if guild is None:
        return "in direct messages only (add --guild ID for a server)"
    return f"in server {guild}"


def _count(text: str) -> int:
    if text.strip().isdigit() and int(text) >= 1:
        return int(text)
    raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")


def _user(text: str) -> int:
    try:
        return parse_user_id(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _id(what: str) -> Any:
    def parse(text: str) -> int:
        try:
            return parse_snowflake(text, what)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = what
    return parse


def register(sub: argparse._SubParsersAction) -> None:
    """Add `quota` and its subcommands to the command line."""
    out = argparse.ArgumentParser(add_help=False)
    out.add_argument("--json", action="store_true", help="print JSON for scripts")
    p = sub.add_parser("quota", help="show and manage image quotas")
    qs = p.add_subparsers(dest="quota_command", metavar="ACTION")
    qs.required = True

    s = qs.add_parser("show", parents=[out], help="a user's quota in a guild (or in DMs)")
    s.add_argument("user", type=_user, metavar="USER", help="user id, mention or cli")
    s.add_argument("--guild", type=_id("guild"), help="guild id (default: direct messages)")
    s.add_argument("--role", type=_id("role"), action="append", default=[], help="role id")
    s.set_defaults(handler=_show)

    s = qs.add_parser("policies", parents=[out], help="every stored limit, tier, exemption, block")
    s.set_defaults(handler=_policies)

    s = qs.add_parser("set-default", parents=[out], help="the default limit and period")
    s.add_argument("limit", type=_images, metavar="N", help="images per user per period")
    s.add_argument("--period", choices=PERIODS)
    s.set_defaults(handler=_set_default)

    s = qs.add_parser(
        "set-guild",
        parents=[out],
        help="a guild's limit, in place of the default ('none' removes it)",
    )
    s.add_argument("guild", type=_id("guild"), metavar="GUILD")
    s.add_argument("limit", type=_limit, metavar="N", help="images per user, or none")
    s.set_defaults(handler=_set_guild)

    s = qs.add_parser("set-role", parents=[out], help="a role tier's limit ('none' removes it)")
    s.add_argument("guild", type=_id("guild"), metavar="GUILD")
    s.add_argument("role", type=_id("role"), metavar="ROLE")
    s.add_argument("limit", type=_limit, metavar="N", help="images per user, or none")
    s.set_defaults(handler=_set_role)

    s = qs.add_parser("exempt", parents=[out], help="make a role unlimited in a guild")
    s.add_argument("guild", type=_id("guild"), metavar="GUILD")
    s.add_argument("role", type=_id("role"), metavar="ROLE")
    s.add_argument("--off", action="store_true", help="remove the exemption")
    s.set_defaults(handler=_exempt)

    s = qs.add_parser(
        "grant", parents=[out], help="extra images for this period (DMs unless --guild)"
    )
    s.add_argument("user", type=_user, metavar="USER")
    s.add_argument("n", type=_count, metavar="N")
    s.add_argument("--guild", type=_id("guild"), help="guild id (default: direct messages)")
    s.set_defaults(handler=_grant)

    s = qs.add_parser(
        "reset", parents=[out], help="forgive this period's charges (DMs unless --guild)"
    )
    s.add_argument("user", type=_user, metavar="USER")
    s.add_argument("--guild", type=_id("guild"), help="guild id (default: direct messages)")
    s.set_defaults(handler=_reset)

    s = qs.add_parser(
        "block",
        parents=[out],
        help="refuse a user's remixes, with a reason (everywhere unless --guild)",
    )
    s.add_argument("user", type=_user, metavar="USER")
    s.add_argument("--reason", required=True, help="shown to the user")
    s.add_argument("--guild", type=_id("guild"), help="in this server only (default: everywhere)")
    s.set_defaults(handler=_block)

    s = qs.add_parser(
        "unblock", parents=[out], help="lift the bot-wide block, or one server's with --guild"
    )
    s.add_argument("user", type=_user, metavar="USER")
    s.add_argument("--guild", type=_id("guild"), help="that server's block (default: bot-wide)")
    s.set_defaults(handler=_unblock)


def _print_status(args: argparse.Namespace, status: QuotaStatus, note: str = "") -> int:
    if args.json:
        print_json(status_dict(status))
    else:
        if note:
            print(note)
        print(status_text(status))
    return 0


def _show(args: argparse.Namespace) -> int:
    status = run_with_store(
        cli_settings(), lambda s: s.quota_status(args.user, args.guild, args.role)
    )
    return _print_status(args, status)


def _policies(args: argparse.Namespace) -> int:
    p = run_with_store(cli_settings(), Store.policies)
    if args.json:
        print_json(
            {
                "default_limit": p.default_limit,
                "period": p.period,
                "reset_hour": p.reset_hour,
                "guilds": [{"guild_id": g, "limit": n} for g, n in sorted(p.guilds.items())],
                "roles": [
                    {"guild_id": g, "role_id": r, "limit": n}
                    for (g, r), n in sorted(p.roles.items())
                ],
                "exempt_roles": [{"guild_id": g, "role_id": r} for g, r in p.exempt_roles],
                "blocked": [block_dict(b) for b in p.blocks],
            }
        )
        return 0
    print(
        f"Default: {p.default_limit} images per user, {p.period}, periods start at"
        f" {p.reset_hour:02d}:00 UTC"
    )
    rows: list[tuple[Any, ...]] = [("guild", g, "-", n) for g, n in sorted(p.guilds.items())]
    rows += [("role tier", g, r, n) for (g, r), n in sorted(p.roles.items())]
    rows += [("exempt role", g, r, "unlimited") for g, r in sorted(p.exempt_roles)]
    if rows:
        print(table(("policy", "guild", "role", "limit"), rows))
    if p.blocks:
        blocks = [(user_label(b.user_id), block_where(b), when(b.blocked_at)) for b in p.blocks]
        print(table(("blocked", "where", "since"), blocks))
        for b in p.blocks:
            print(f"Reason ({user_label(b.user_id)}, {block_where(b)}): {b.reason}")
    return 0


def _set_default(args: argparse.Namespace) -> int:
    p = run_with_store(cli_settings(), lambda s: s.set_default(args.limit, args.period))
    if args.json:
        print_json({"default_limit": p.default_limit, "period": p.period})
    else:
        print(f"Default quota: {p.default_limit} images per user, {p.period}.")
    return 0


def _done(args: argparse.Namespace, data: dict[str, Any], text: str) -> int:
    if args.json:
        print_json(data)
    else:
        print(text)
    return 0


def _set_guild(args: argparse.Namespace) -> int:
    run_with_store(cli_settings(), lambda s: s.set_guild(args.guild, args.limit))
    text = (
        f"Guild {args.guild} uses the default limit."
        if args.limit is None
        else f"Guild {args.guild}: {args.limit} images per user, in place of the default"
        " (a higher role tier there still raises a member)."
    )
    return _done(args, {"guild_id": args.guild, "limit": args.limit}, text)


def _set_role(args: argparse.Namespace) -> int:
    run_with_store(cli_settings(), lambda s: s.set_role(args.guild, args.role, args.limit))
    text = (
        f"Role {args.role} in guild {args.guild} has no tier."
        if args.limit is None
        else f"Role {args.role} in guild {args.guild}: {args.limit} images per user."
    )
    data = {"guild_id": args.guild, "role_id": args.role, "limit": args.limit}
    return _done(args, data, text)


def _exempt(args: argparse.Namespace) -> int:
    exempt = not args.off
    run_with_store(cli_settings(), lambda s: s.set_exempt_role(args.guild, args.role, exempt))
    text = f"Role {args.role} in guild {args.guild} is {'unlimited' if exempt else 'not exempt'}."
    return _done(args, {"guild_id": args.guild, "role_id": args.role, "exempt": exempt}, text)


def _grant(args: argparse.Namespace) -> int:
    status = run_with_store(cli_settings(), lambda s: s.grant(args.user, args.guild, args.n))
    note = (
        f"Granted {args.n} extra images to {user_label(args.user)} for this period,"
        f" {_scope(args.guild)}."
    )
    return _print_status(args, status, note)


def _reset(args: argparse.Namespace) -> int:
    status = run_with_store(cli_settings(), lambda s: s.reset(args.user, args.guild))
    note = f"Reset this period's charges of {user_label(args.user)}, {_scope(args.guild)}."
    return _print_status(args, status, note)


def _block(args: argparse.Namespace) -> int:
    run_with_store(cli_settings(), lambda s: s.block(args.user, args.reason, guild_id=args.guild))
    text = blocked_text(args.user, args.guild, args.reason)
    data = {"user_id": args.user, "guild_id": args.guild, "blocked": True, "reason": args.reason}
    return _done(args, data, text)


def _unblock(args: argparse.Namespace) -> int:
    done = run_with_store(cli_settings(), lambda s: s.unblock(args.user, guild_id=args.guild))
    text = unblocked_text(args.user, args.guild, done)
    data = {
        "user_id": args.user,
        "guild_id": args.guild,
        "blocked": False,
        "was_blocked": done.lifted,
        "still_blocked": [block_dict(b) for b in done.still],
    }
    return _done(args, data, text)
