from pcam.errors import run_cli
from search.report.cli import main

run_cli(main)
