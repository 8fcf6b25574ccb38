"""How audit reports look in a terminal."""

from __future__ import annotations

from enum import StrEnum

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orchestrator.audit import AuditReport, Claim
from parties.log import labels_text


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


def claims_table(title: str, claims: list[Claim], console: Console) -> None:
    table = Table(title=title, title_justify="left")
    table.add_column("claim")
    table.add_column("checked", justify="right")
    table.add_column("result")
    for claim in claims:
        result = (
            "[green]holds[/]"
            if claim.ok
            else "[red]FAILS[/]\n" + "\n".join(escape(str(f)) for f in claim.findings)
        )
        result += "".join(f"\n[yellow]note[/] {escape(str(n))}" for n in claim.notes)
        table.add_row(escape(claim.name), str(claim.checked), result)
    console.print(table)


def audit_tables(report: AuditReport, console: Console) -> None:
    claims_table(f"Audit of run {report.run_id} ({report.scenario})", report.claims, console)

    matrix = Table(
        title="Visibility: the most revealing form that reached each party",
        title_justify="left",
    )
    matrix.add_column("party")
    matrix.add_column("asset @ form")
    for party, seen in report.visibility.items():
        matrix.add_row(party, escape(", ".join(f"{a}@{f}" for a, f in sorted(seen.items())) or "-"))
    console.print(matrix)

    if report.blocked:
        console.print("[bold]Blocked at the boundary[/]")
        for item in report.blocked:
            verb = "withheld" if item["withheld"] else "refused"
            console.print(
                f"  [red]{verb}[/] {item['from']} -> {item['to']} "
                f"({item['party']} entry {item['entry']}): "
                + escape(
                    f"{item['step']} [{labels_text(item['labels'])}]: "
                    f"{item['refusal']}: {item['detail']}"
                ),
                highlight=False,
            )
    verdict = "[bold green]every claim holds[/]" if report.ok else "[bold red]some claims fail[/]"
    console.print(verdict)
    if report.ca_fingerprint:
        console.print(
            f"Run CA: sha256:{report.ca_fingerprint} "
            "(pin it: airlock audit RUN --ca-fingerprint ...)",
            highlight=False,
        )
