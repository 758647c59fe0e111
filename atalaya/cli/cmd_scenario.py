"""``atalaya scenario``: generate the synthetic scenario world."""

from __future__ import annotations

from pathlib import Path

import click

from atalaya.cli.context import emit, json_option, show_progress


@click.group(name="scenario")
def scenario() -> None:
    """Generate the synthetic scenario world (feeds, records and ground truth)."""


@scenario.command(name="generate")
@click.option(
    "--size", type=click.Choice(["demo", "small", "large"]), default="demo", show_default=True, help="Scenario size."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (same seed, same bytes).")
@click.option("--days", type=click.IntRange(min=1), default=None, help="Override the number of days of the size.")
@click.option("--force", is_flag=True, help="Replace feeds/, records/, truth/ of a non-empty OUT.")
@json_option
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.pass_context
def generate_cmd(
    ctx: click.Context, size: str, seed: int, days: int | None, force: bool, as_json: bool, out: Path
) -> None:
    """Generate a scenario of SIZE into the directory OUT (see OUT/README.md)."""
    from atalaya.scenario.config import get_config
    from atalaya.scenario.generate import generate

    cfg = get_config(size, days=days) if days else get_config(size)
    bar = None
    if show_progress(ctx) and not as_json:
        from tqdm import tqdm

        bar = tqdm(total=cfg.days, unit="day", desc=f"scenario {size}")

    def on_day(done: int, total: int) -> None:
        if bar is not None:
            bar.update(1)

    try:
        summary = generate(out, size=size, seed=seed, config=cfg, overwrite=force, on_day=on_day)
    finally:
        if bar is not None:
            bar.close()
    emit(
        as_json,
        summary.to_dict(),
        lambda d: (
            f"scenario {d['size']} (seed {d['seed']}, {d['days']} days) written to {out}\n"
            + "\n".join(f"  {k:<11} {v:>12,}" for k, v in d["counts"].items())
            + f"\n  {'total':<11} {d['observations']:>12,}\n  {d['society']}"
        ),
    )
