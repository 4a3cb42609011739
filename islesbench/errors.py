"""User-facing errors: one clear line, printed by the CLI without a traceback."""


class IslesbenchError(Exception):
    """An error caused by the user's input or environment, with a message fit to print as is."""


class CaseError(IslesbenchError):
    """A fault in one case of a cohort: names the case, the file and what is wrong."""

    def __init__(self, case: str, file: str, fault: str):
        self.case, self.file, self.fault = case, file, fault
        super().__init__(f"{case}: {file}: {fault}")


class CohortError(IslesbenchError):
    """Several case faults found at once, listed one per line."""

    def __init__(self, faults: list):
        self.faults = list(faults)
        lines = "\n".join(f"  - {f}" for f in self.faults)
        super().__init__(f"{len(self.faults)} malformed case file(s):\n{lines}")
