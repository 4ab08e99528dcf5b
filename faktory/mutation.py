"""``Mutation``: MUTATE operations on one of the server's sorted sets (retries,
scheduled, dead), with an optional filter.

``await client.dead.of_type("Email").requeue()``.  Each builder method returns a new
``Mutation`` (the original is unchanged), so partial filters can be reused.

How the server applies filters: ``jids`` wins over everything else; otherwise
``matching`` is a Redis ``SCAN MATCH`` *glob* over the stored job JSON (not a regular
expression: wrap it in ``*``), narrowed by ``of_type`` when both are given; ``of_type``
alone matches the job type exactly.  ``clear()`` empties the whole set and ignores any
filter, so calling it on a filtered ``Mutation`` raises ``ValueError`` (use
``discard()`` to delete only the matching jobs).

The MUTATE line is split on spaces by the server, so no part of the filter may contain
a space: such a glob, job type or jid is refused here with ``ValueError``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from faktory.client import Client

__all__ = ["Mutation", "TARGETS"]

TARGETS = ("retries", "scheduled", "dead")


def _no_space(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}: {value!r}")
    if not value:
        raise ValueError(f"{what} must not be empty")
    if any(c in value for c in " \r\n"):
        raise ValueError(
            f"{what} cannot contain a space or line break (the server splits the MUTATE "
            f"command on spaces): {value!r}")
    return value


class Mutation:
    """A MUTATE target (``"retries"``, ``"scheduled"`` or ``"dead"``) and filter."""

    __slots__ = ("_client", "target", "_jobtype", "_jids", "_glob")

    def __init__(self, client: Client, target: str, *, jobtype: str | None = None,
                 jids: tuple[str, ...] = (), glob: str | None = None) -> None:
        if target not in TARGETS:
            raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
        self._client = client
        self.target = target
        self._jobtype = jobtype
        self._jids = jids
        self._glob = glob

    def _copy(self, **changes: Any) -> Mutation:
        fields: dict[str, Any] = {"jobtype": self._jobtype, "jids": self._jids, "glob": self._glob}
        fields.update(changes)
        return Mutation(self._client, self.target, **fields)

    def of_type(self, jobtype: str) -> Mutation:
        """Only jobs of this job type."""
        return self._copy(jobtype=_no_space(jobtype, "jobtype"))

    def with_jids(self, *jids: str) -> Mutation:
        """Only jobs with these jids (added to any given before; overrides the other filters)."""
        if not jids:
            raise ValueError("with_jids needs at least one jid")
        return self._copy(jids=self._jids + tuple(_no_space(jid, "jid") for jid in jids))

    def matching(self, glob: str) -> Mutation:
        """Only jobs whose stored JSON matches this Redis glob: ``*`` any run, ``?`` one
        character, ``[abc]`` one of a set (so escape a literal bracket: ``\\[``).  E.g.
        ``'*"user-42"*'`` for jobs whose JSON contains that string.  No spaces allowed."""
        return self._copy(glob=_no_space(glob, "glob"))

    @property
    def filter(self) -> dict[str, Any] | None:
        """The MUTATE ``filter`` object, or None for the whole set."""
        flt: dict[str, Any] = {}
        if self._jids:
            flt["jids"] = list(self._jids)
        if self._glob is not None:
            flt["regexp"] = self._glob
        if self._jobtype is not None:
            flt["jobtype"] = self._jobtype
        return flt or None

    def payload(self, cmd: str) -> dict[str, Any]:
        """The MUTATE JSON for ``cmd`` (``clear``, ``kill``, ``discard``, ``requeue``)."""
        payload: dict[str, Any] = {"cmd": cmd, "target": self.target}
        flt = self.filter
        if flt is not None:
            payload["filter"] = flt
        return payload

    async def _run(self, cmd: str) -> None:
        client = self._client
        data = client.codec.pack_json("MUTATE", self.payload(cmd))
        if b" " in data[7:]:  # safety net: the parts were checked, compact JSON adds none
            raise ValueError(f"MUTATE payload would contain a space: {data!r}")
        await client._call(data)

    async def clear(self) -> None:
        """Empty the whole set.  Refused on a filtered Mutation (the server would ignore
        the filter): use ``discard()`` for that."""
        if self.filter is not None:
            raise ValueError("clear() empties the whole set and ignores filters; use discard() "
                             "to delete only the matching jobs")
        await self._run("clear")

    async def kill(self) -> None:
        """Move the matching jobs to the dead set."""
        await self._run("kill")

    async def discard(self) -> None:
        """Delete the matching jobs (all of them without a filter)."""
        await self._run("discard")

    async def requeue(self) -> None:
        """Put the matching jobs back on their queues now, and remove them from the set."""
        await self._run("requeue")

    def __repr__(self) -> str:
        return f"<Mutation {self.target} filter={self.filter!r}>"
