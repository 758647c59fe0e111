"""Which territories an accounting uses, and which fixes fall where none is loaded.

Three sets (``--territory-set`` on the accounting commands, ``[territories] set``
in the workspace configuration):

* ``region`` (the default): the bundled Mexico-region countries with their
  territorial seas and the MEX, USA, GTM and BLZ states
  (:func:`atalaya.geo.territories.load_territories`); the figures of the
  scenario and of every earlier run stay as they were;
* ``world``: every Natural Earth country with its territorial sea, and the
  bundled and configured states, loaded for the 10° tiles the data touches
  (:func:`atalaya.geo.world.load_world`); deriving a region's countries the
  first time takes seconds to minutes (large coasts), later processes read them
  from the on-disk cache;
* ``auto``: ``region`` when it covers every fix, else ``world``.

``[territories] admin1 = "PATH"`` names a Natural Earth admin-1 GeoJSON (for
instance ``ne_10m_admin_1_states_provinces.geojson``) whose states the world set
loads besides the bundled ones; a relative path is read from the workspace.
``--territories FILE`` adds a user's own territories to whichever set is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from atalaya.core.errors import ConfigError, ValidationError
from atalaya.core.workspace import Workspace
from atalaya.geo import world
from atalaya.geo.territories import Territories, load_territories
from atalaya.sovereignty.accounting import uncovered_points

TERRITORY_SETS: tuple[str, ...] = ("region", "world", "auto")
"""Names of the territory sets, the default first."""
DEFAULT_SET = "region"

BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, kw_only=True)
class TerritoryChoice:
    """A territory set and the user's additions to it; :meth:`load` gives the territories for some fixes."""

    territory_set: str = DEFAULT_SET
    """``region``, ``world`` or ``auto``."""
    extra: Path | None = None
    """A user's territories (GeoJSON with ``id``, ``name``, ``level``, ``owner``), added to the set."""
    admin1: Path | None = None
    """A Natural Earth admin-1 GeoJSON whose states the world set loads too."""

    def __post_init__(self) -> None:
        if self.territory_set not in TERRITORY_SETS:
            raise ValidationError(
                f"unknown territory set {self.territory_set!r}", hint=f"use one of {', '.join(TERRITORY_SETS)}"
            )

    @classmethod
    def from_config(
        cls, ws: Workspace | None, *, territory_set: str | None = None, extra: Path | None = None
    ) -> TerritoryChoice:
        """The workspace's ``[territories]`` settings, with the command line's ``territory_set`` and ``extra``."""
        conf = ws.config.table("territories") if ws is not None else {}
        unknown = sorted(set(conf) - {"set", "admin1"})
        if unknown:
            raise ConfigError(
                f"[territories] has unknown key(s) {', '.join(unknown)}", hint='use set = "world" and admin1 = "PATH"'
            )
        chosen = territory_set or str(conf.get("set", DEFAULT_SET))
        if chosen not in TERRITORY_SETS:
            raise ConfigError(
                f"[territories] set = {chosen!r} is not a territory set", hint=f"use one of {', '.join(TERRITORY_SETS)}"
            )
        admin1: Path | None = None
        if conf.get("admin1"):
            admin1 = Path(str(conf["admin1"])).expanduser()
            if not admin1.is_absolute() and ws is not None:
                admin1 = ws.root / admin1
            if not admin1.is_file():
                raise ConfigError(
                    f"[territories] admin1 = {str(conf['admin1'])!r}: no such file ({admin1})",
                    hint="point it at a Natural Earth admin-1 GeoJSON (plain or gzipped)",
                )
        return cls(territory_set=chosen, extra=extra, admin1=admin1)

    def load(self, lon: Any = None, lat: Any = None) -> Territories:
        """The territories of this choice for fixes at ``lon``/``lat`` (``world`` without fixes: the whole world)."""
        if self.territory_set == "world":
            return world.load_world(lon=lon, lat=lat, admin1=self.admin1, extra=self.extra)
        region = load_territories(extra=self.extra)
        if self.territory_set == "region" or lon is None or lat is None:
            return region
        if not unlabelled_points(region, lon, lat).any():
            return region
        return world.load_world(lon=lon, lat=lat, admin1=self.admin1, extra=self.extra)


def unlabelled_points(t: Territories, lon: Any, lat: Any, level: str = "country") -> BoolArray:
    """Fixes where no territory of ``level`` is loaded, so that ``INTL`` may stand for a territory left out.

    For a world set at country level: the fixes outside the tiles it was loaded
    for (none when it was loaded for these fixes). Otherwise the fixes outside
    the region the loaded territories cover
    (:func:`atalaya.sovereignty.accounting.uncovered_points`).
    """
    x = np.asarray(lon, dtype=np.float64).ravel()
    y = np.asarray(lat, dtype=np.float64).ravel()
    outside = world.outside_loaded_tiles(t, x, y) if level == "country" else None
    return outside if outside is not None else uncovered_points(t, x, y, level)


def warning_text(n: int) -> str:
    """The warning shown when ``n`` fixes lie where no territory is loaded."""
    return (
        f"{n} fix(es) lie outside the region the loaded territories cover; their time is accounted as INTL for want "
        "of a territory — load territories covering them with --territory-set world (or auto), or --territories FILE"
    )
