"""The member controls: persistent buttons and selects (DynamicItems: only a job id, or a message
id, lives in the custom id, so each works days later and after a restart) and the modals they
open. What a control does is the handler's (the Remix cog); this module is their shape.

Modals are answered from `on_interaction` by their custom id (`modal_route`), never from state
held in memory: a modal opened before a restart is still submitted after it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

import discord

from bot.remix.request import MAX_PROMPT_CHARS
from bot.workflow import VARY_WEIGHTS
from cogs._publish import Controls
from cogs._ui import CANCEL_EMOJI, DELETE_EMOJI, DM_EMOJI, EDIT_EMOJI, REROLL_EMOJI, RETRY_EMOJI

# A modal nobody submits is dropped from discord.py's memory after this long.
MODAL_SECONDS = 15 * 60.0
# Discord: at most 25 options in a select.
MAX_PICKS = 25
JOB = r"(?P<job>[0-9]{1,18})"


class ControlHandler(Protocol):
    """What the result controls call; the Results cog (cogs/results.py) implements it."""

    async def again_from_button(
        self, interaction: discord.Interaction, job_id: int, *, retry: bool
    ) -> None:
        """Reroll or Retry."""

    async def open_edit(self, interaction: discord.Interaction, job_id: int) -> None:
        """Open the Edit modal."""

    async def vary_from_select(
        self, interaction: discord.Interaction, job_id: int, index: int, strength: str
    ) -> None:
        """Vary one result image."""

    async def delete_from_button(self, interaction: discord.Interaction, job_id: int) -> None:
        """Delete the result."""

    async def dm_from_button(self, interaction: discord.Interaction, job_id: int) -> None:
        """Send the result by DM."""

    async def cancel_from_button(self, interaction: discord.Interaction, job_id: int) -> None:
        """Cancel a queued job."""


class PickHandler(Protocol):
    """What the context menu's image select calls; the Remix cog implements it."""

    async def open_remix_modal(
        self, interaction: discord.Interaction, message_id: int, index: int
    ) -> None:
        """Open the context menu's modal for one picked image."""


def _handler(interaction: discord.Interaction) -> ControlHandler:
    """The Results cog of the bot that received the interaction."""
    handler = interaction.client.get_cog("Results")  # type: ignore[attr-defined]
    assert handler is not None, "cogs.results is not loaded"
    return handler  # type: ignore[no-any-return]


def _picker(interaction: discord.Interaction) -> PickHandler:
    """The Remix cog of the bot that received the interaction."""
    handler = interaction.client.get_cog("Remix")  # type: ignore[attr-defined]
    assert handler is not None, "cogs.remix is not loaded"
    return handler  # type: ignore[no-any-return]


class _JobButton(discord.ui.DynamicItem[discord.ui.Button], template=r"remix:none:" + JOB):
    """A button whose custom id is `remix:<action>:<job id>`; subclasses set the action."""

    action = "none"
    label = ""
    emoji: str | None = None
    style = discord.ButtonStyle.secondary

    def __init__(self, job_id: int, row: int | None = None) -> None:
        super().__init__(
            discord.ui.Button(
                label=self.label or None,
                emoji=self.emoji,
                style=self.style,
                custom_id=f"remix:{self.action}:{job_id}",
                row=row,
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /
    ) -> _JobButton:
        """Rebuild the button from a click (no state needed)."""
        return cls(int(match["job"]))


class RerollButton(_JobButton, template=r"remix:reroll:" + JOB):
    """Reroll: the same job with a new seed, for whoever clicks, charged to them."""

    action, label, emoji = "reroll", "Reroll", REROLL_EMOJI

    async def callback(self, interaction: discord.Interaction) -> None:
        """Reroll the job for whoever clicked."""
        await _handler(interaction).again_from_button(interaction, self.job_id, retry=False)


class RetryButton(_JobButton, template=r"remix:retry:" + JOB):
    """Retry under a job a restart lost at the backend: the same job again, for its member."""

    action, label, emoji, style = "retry", "Retry", RETRY_EMOJI, discord.ButtonStyle.primary

    async def callback(self, interaction: discord.Interaction) -> None:
        """Run the same job again for its member."""
        await _handler(interaction).again_from_button(interaction, self.job_id, retry=True)


class EditButton(_JobButton, template=r"remix:edit:" + JOB):
    """Edit: a modal pre-filled with the job's prompt, then a new job on the same input."""

    action, label, emoji = "edit", "Edit", EDIT_EMOJI

    async def callback(self, interaction: discord.Interaction) -> None:
        """Open the Edit modal."""
        await _handler(interaction).open_edit(interaction, self.job_id)


class DeleteButton(_JobButton, template=r"remix:delete:" + JOB):
    """Delete the result (the requester, or a member with Manage Messages)."""

    action, label, emoji, style = "delete", "Delete", DELETE_EMOJI, discord.ButtonStyle.danger

    async def callback(self, interaction: discord.Interaction) -> None:
        """Delete the result messages."""
        await _handler(interaction).delete_from_button(interaction, self.job_id)


class DmButton(_JobButton, template=r"remix:dm:" + JOB):
    """Send the images and the job's details to the clicker by DM."""

    action, label, emoji = "dm", "DM me", DM_EMOJI

    async def callback(self, interaction: discord.Interaction) -> None:
        """DM the result."""
        await _handler(interaction).dm_from_button(interaction, self.job_id)


class CancelButton(_JobButton, template=r"remix:cancel:" + JOB):
    """Cancel a queued job (the requester, or an admin); refunded at once."""

    action, label, emoji = "cancel", "Cancel", CANCEL_EMOJI

    async def callback(self, interaction: discord.Interaction) -> None:
        """Cancel the job."""
        await _handler(interaction).cancel_from_button(interaction, self.job_id)


def _values(interaction: discord.Interaction) -> list[str]:
    data: Any = interaction.data or {}
    return [str(v) for v in data.get("values", [])]


class VarySelect(discord.ui.DynamicItem[discord.ui.Select], template=r"remix:vary:" + JOB):
    """Vary: pick a result image and a strength (Subtle keeps close to it, Strong strays)."""

    def __init__(self, job_id: int, images: int = 1) -> None:
        options = [
            discord.SelectOption(
                label=f"Vary image {n} ({strength.title()})",
                value=f"{n}:{strength}",
                description="close to the image" if strength == "subtle" else "further from it",
            )
            for n in range(1, max(1, images) + 1)
            for strength in VARY_WEIGHTS
        ][:MAX_PICKS]
        super().__init__(
            discord.ui.Select(
                placeholder="Vary an image…",
                options=options,
                custom_id=f"remix:vary:{job_id}",
                row=1,
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Select, match: re.Match[str], /
    ) -> VarySelect:
        """Rebuild the select from a pick (its options come with the message)."""
        return cls(int(match["job"]), max(1, len(item.options) // len(VARY_WEIGHTS)))

    async def callback(self, interaction: discord.Interaction) -> None:
        """Vary the picked image."""
        values = _values(interaction)
        index, _, strength = (values[0] if values else "").partition(":")
        if not index.isdigit() or strength not in VARY_WEIGHTS:
            await interaction.response.defer()  # not a value we offered: nothing to do
            return
        await _handler(interaction).vary_from_select(interaction, self.job_id, int(index), strength)


class PickSelect(
    discord.ui.DynamicItem[discord.ui.Select], template=r"remix:pick:(?P<message>[0-9]{1,20})"
):
    """Which image of a message to remix (the context menu, when the message holds several)."""

    def __init__(self, message_id: int, names: list[str] | None = None) -> None:
        options = [
            discord.SelectOption(label=f"Image {n}", value=str(n), description=name[:100] or None)
            for n, name in enumerate(names or [""], start=1)
        ][:MAX_PICKS]
        super().__init__(
            discord.ui.Select(
                placeholder="Pick the image to remix…",
                options=options,
                custom_id=f"remix:pick:{message_id}",
            )
        )
        self.message_id = message_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Select, match: re.Match[str], /
    ) -> PickSelect:
        """Rebuild the select from a pick."""
        return cls(int(match["message"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        """Open the modal for the picked image."""
        values = _values(interaction)
        if not values or not values[0].isdigit():
            await interaction.response.defer()
            return
        await _picker(interaction).open_remix_modal(interaction, self.message_id, int(values[0]))


DYNAMIC_ITEMS = (
    RerollButton,
    RetryButton,
    EditButton,
    DeleteButton,
    DmButton,
    CancelButton,
    VarySelect,
    PickSelect,
)


def result_view(job_id: int, images: int = 1) -> discord.ui.View:
    """The controls under a result: Reroll, Edit, DM, Delete, and Vary for each image."""
    view = discord.ui.View(timeout=None)
    for item in (RerollButton, EditButton, DmButton, DeleteButton):
        view.add_item(item(job_id, row=0))
    view.add_item(VarySelect(job_id, images))
    return view


def retry_view(job_id: int) -> discord.ui.View:
    """A persistent view holding the Retry button for one job."""
    view = discord.ui.View(timeout=None)
    view.add_item(RetryButton(job_id))
    return view


def progress_view(job_id: int) -> discord.ui.View:
    """Cancel, under a job's progress message."""
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(job_id))
    return view


def pick_view(message_id: int, names: list[str]) -> discord.ui.View:
    """The select that picks one of a message's images."""
    view = discord.ui.View(timeout=MODAL_SECONDS)
    view.add_item(PickSelect(message_id, names))
    return view


CONTROLS = Controls(result=result_view, retry=retry_view, progress=progress_view)


# --- modals --------------------------------------------------------------------------------

EDIT_MODAL = re.compile(r"remix:editmodal:" + JOB)
REMIX_MODAL = re.compile(r"remix:remixmodal:(?P<message>[0-9]{1,20}):(?P<index>[0-9]{1,2})")


class _QuietModal(discord.ui.Modal):
    """A modal whose submission is handled from `on_interaction` by its custom id (see the
    module docstring), so this object's own submit does nothing."""

    async def on_submit(self, interaction: discord.Interaction) -> None:
        """Handled elsewhere."""


def prompt_modal(
    title: str,
    custom_id: str,
    *,
    prompt: str = "",
    negative_prompt: str = "",
    image_weight: int | None = None,
) -> discord.ui.Modal:
    """The prompt, negative prompt and image weight, pre-filled when given."""
    modal = _QuietModal(title=title, custom_id=custom_id, timeout=MODAL_SECONDS)
    modal.add_item(
        discord.ui.TextInput(
            label="Prompt",
            custom_id="prompt",
            style=discord.TextStyle.paragraph,
            default=prompt[:MAX_PROMPT_CHARS] or None,
            min_length=1,
            max_length=MAX_PROMPT_CHARS,
        )
    )
    modal.add_item(
        discord.ui.TextInput(
            label="Negative prompt (optional)",
            custom_id="negative_prompt",
            style=discord.TextStyle.paragraph,
            default=negative_prompt[:MAX_PROMPT_CHARS] or None,
            required=False,
            max_length=MAX_PROMPT_CHARS,
        )
    )
    modal.add_item(
        discord.ui.TextInput(
            label="Image weight, 1-100 (optional)",
            custom_id="image_weight",
            default=None if image_weight is None else str(image_weight),
            placeholder="50",
            required=False,
            max_length=3,
        )
    )
    return modal


@dataclass(frozen=True)
class PromptFields:
    """What a member typed into a prompt modal (weight as typed: checked by the request)."""

    prompt: str
    negative_prompt: str | None
    image_weight: str | None


def modal_fields(interaction: discord.Interaction) -> PromptFields:
    """The prompt modal's values from a submission as Discord sends it."""
    data: Any = interaction.data or {}
    values: dict[str, str] = {}
    for row in data.get("components", []):
        inner = row.get("components") or [row.get("component") or {}]
        for field in inner:
            if "custom_id" in field:
                values[field["custom_id"]] = str(field.get("value") or "")
    negative = values.get("negative_prompt", "").strip()
    weight = values.get("image_weight", "").strip()
    return PromptFields(values.get("prompt", ""), negative or None, weight or None)
