"""``python -m training [--config C] [--trust-checkpoint] [key=value ...]``: one training run, exactly
``launch.py train`` (same config, exit statuses and signals); the grid (``training.compare``) runs its
runs this way, so nothing in ``training/`` starts the launcher above it."""
import argparse
import logging
import sys

from configs.errors import run_command
from training.run import train_command

parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
parser.add_argument("--config", default=None)
parser.add_argument("--trust-checkpoint", action="store_true")
parser.add_argument("overrides", nargs="*", metavar="key=value")
args = parser.parse_args()
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
sys.exit(run_command(lambda: train_command(args.config, args.overrides, args.trust_checkpoint)))
