"""What becomes of each glint of a batch: the domain's decision, which a record then persists.

An id is the publisher's idempotency key. The same publisher sending the same glint again (a retry)
is answered with the stored one; the same id with a different body, or an id another publisher
already used, is a conflict (409) that names what differs, so no reading is ever dropped silently.
A `parent_id` must name a stored glint, or one earlier in the same batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .glints import Glint, GlintDraft, GlintError


@dataclass(slots=True)
class Decision:
    """One glint's fate: written (`index` into the batch's new drafts), duplicate (`glint`, or
    `index` when it repeats a draft earlier in the batch), or refused (`error`)."""

    index: int | None = None
    glint: Glint | None = None
    duplicate: bool = False
    error: GlintError | None = None


@dataclass(slots=True)
class Plan:
    """The drafts to write, in seq order, and a decision per glint of the batch."""

    new: list[GlintDraft] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)

    def outcomes(self, first_seq: int | None) -> list[Decision]:
        """Decisions with their glints, once the record has stored `new` from `first_seq`."""
        written = (
            [] if first_seq is None else [d.glint(first_seq + i) for i, d in enumerate(self.new)]
        )
        for decision in self.decisions:
            if decision.glint is None and decision.index is not None:
                decision.glint = written[decision.index]
        return self.decisions


def plan_batch(drafts: Sequence[GlintDraft], stored: Mapping[str, Glint]) -> Plan:
    """Decide each draft in order against what is `stored` (its ids and parents, looked up)."""
    plan = Plan()
    earlier: dict[str, int] = {}  # id -> index into plan.new
    for draft in drafts:
        prior = stored.get(draft.id)
        if prior is not None:
            error = conflict(draft, prior)
            plan.decisions.append(Decision(glint=prior, duplicate=error is None, error=error))
            continue
        if draft.id in earlier:
            first = plan.new[earlier[draft.id]]
            error = conflict(draft, first)
            index = None if error else earlier[draft.id]
            plan.decisions.append(Decision(index=index, duplicate=error is None, error=error))
            continue
        parent = draft.parent_id
        if parent and parent not in stored and parent not in earlier:
            problem = f"parent_id: no glint with id {parent!r}"
            plan.decisions.append(
                Decision(
                    error=GlintError(
                        422,
                        "invalid_glint",
                        problem,
                        [{"field": "parent_id", "problem": problem}],
                    )
                )
            )
            continue
        earlier[draft.id] = len(plan.new)
        plan.decisions.append(Decision(index=len(plan.new)))
        plan.new.append(draft)
    return plan


def conflict(draft: GlintDraft, kept: Glint | GlintDraft) -> GlintError | None:
    """Why `draft` may not stand for the glint `kept` under its id (stored, or earlier in the
    batch); None for a retry."""
    if draft.source != kept.source:
        return GlintError(
            409,
            "id_taken",
            f"the id {draft.id!r} belongs to a glint another publisher sent; "
            "choose another id (a UUID, say)",
            [{"field": "id", "problem": "used by another publisher"}],
        )
    differ = [
        name
        for name, given, was in (
            ("module", draft.module, kept.module),
            ("phase", draft.phase if draft.phase_given else kept.phase, kept.phase),
            ("context", draft.context, kept.context),
            ("parent_id", draft.parent_id, kept.parent_id),
        )
        if given != was
    ]
    if not differ:
        return None
    return GlintError(
        409,
        "glint_conflict",
        f"a glint with id {draft.id!r} is already stored with a different "
        f"{', '.join(differ)}; an id names one glint",
        [{"field": name, "problem": "differs from the stored glint"} for name in differ],
    )
