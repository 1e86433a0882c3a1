"""Command line of the processing container: ``python -m container {train,import,infer}``.

Any failure is written to ``/opt/ml/output/message`` (SageMaker's FailureReason)
and the process exits non-zero, so the job is marked Failed with that reason.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback

from container.contract import BAD_INPUT_PREFIX, InferArguments
from container.environment import ProcessingEnvironment
from container.errors import JobInputError
from container.import_model import run_import
from container.infer import run_infer
from container.train import run_train


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m container")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("train", help="fit a registered model and write its bundle")
    commands.add_parser("import", help="check an existing model artifact and write its bundle")
    infer = commands.add_parser("infer", help="score this instance's shard of input files")
    InferArguments.add_to_parser(infer)
    return parser


def main(argv: list[str] | None = None) -> int:
    # the level name lets the run log's relay (resources/log_relay.py) tell errors apart
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s",
                        stream=sys.stdout)
    args = build_parser().parse_args(argv)
    env = ProcessingEnvironment.from_environment()
    try:
        if args.command == "train":
            run_train(env)
        elif args.command == "import":
            run_import(env)
        else:
            run_infer(env, InferArguments.from_namespace(args))
    except JobInputError as exc:
        env.write_failure_message(BAD_INPUT_PREFIX + str(exc))
        logging.getLogger("container").error("%s", exc)
        return 2
    except Exception as exc:
        env.write_failure_message(f"{type(exc).__name__}: {exc}")
        traceback.print_exc()
        return 1
    return 0


def exit_now(code: int) -> None:
    """Flush everything, then end the process without interpreter teardown.

    Every output is already renamed into place and every manifest written when
    ``main`` returns; what remains is library teardown (oneDAL's and XGBoost's
    thread pools), measured at 0.6 s per job here, paid on every instance.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
