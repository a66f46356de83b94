"""Saving a demo result as a generation record, so QA made on the page is data like any generation run's.

Layout under the output folder (default `output/demo/`)::

    images/<sha256 prefix>.png        the image as generated from (RGB PNG), named by its content
    llava_vig/run.json                 a run folder of the LLaVA-style task (conversation / detail / complex)
    llava_vig/records.demo.jsonl       one record per save: the fields of `vigc/tasks/generate_llava.py`'s records
    vqg_answer/run.json                a run folder of the OKVQA-style task
    vqg_answer/records.demo.jsonl      the fields of the ga pass's records (`vigc/tasks/generate_vqa.py`)

Each run folder can be merged and exported like a generation run:
`python -m vigc.tools.merge_records output/demo/llava_vig --llava-export llava.json`.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from vigc.data.images import to_rgb
from vigc.demo.engine import DemoResult
from vigc.errors import VIGCError
from vigc.generation.records import RecordWriter, RunPaths, write_run_info
from vigc.generation.records_format import vic_record_fields
from vigc.tasks.generate_llava import json_safe

__all__ = ["DEMO_WRITER", "RUN_TASKS", "SavedRecord", "build_record", "save_image", "save_result"]

logger = logging.getLogger(__name__)

DEMO_WRITER = "demo"
# Demo task → the generation task (and run folder) its records belong to.
RUN_TASKS = {"conv": "llava_vig", "desc": "llava_vig", "comp": "llava_vig", "okvqa": "vqg_answer"}


@dataclass(frozen=True)
class SavedRecord:
    """Where a save went.

    Attributes:
        records_file: the JSON Lines file the record was appended to.
        key: the record's key (`<image>#<task>#<index>`).
        image_file: the saved image.
    """

    records_file: Path
    key: str
    image_file: Path


def save_image(image: Image.Image, images_dir: Path) -> Path:
    """Write `image` as RGB PNG named by its content (the same image is stored once); returns its path."""
    buffer = io.BytesIO()
    to_rgb(image).save(buffer, format="PNG")
    data = buffer.getvalue()
    path = images_dir / f"{hashlib.sha256(data).hexdigest()[:16]}.png"
    if not path.exists():
        images_dir.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_bytes(data)
        os.replace(partial, path)
    return path


def build_record(result: DemoResult, image: str, sample_index: int, upload_name: str = "") -> dict[str, Any]:
    """The record of a result, with the fields its generation task writes plus a `demo` block.

    Args:
        result: what the model made.
        image: the image's name in the images folder.
        sample_index: how many records of this image and task were saved before.
        upload_name: the uploaded file's own name, kept for reference.
    """
    s = result.settings
    demo = {
        "settings": s.as_dict(),
        "own_question": bool(s.own_question),
        "answer_without_vic": result.vig_answer,
        "timings": result.timings,
        "upload_name": upload_name,
    }
    common = {"image": image, "key": f"{image}#{s.task}#{sample_index}", "valid": result.valid}
    if result.qa is not None:
        vic = {"mode": "off", "vig_decoding": asdict(s.decoding())} if s.vic_mode == "off" else asdict(s.vic_settings())
        return {
            **common,
            "task": s.task,
            "sample_index": sample_index,
            **vic_record_fields(result.qa),
            "provenance": {"model": result.model_provenance, "vic": json_safe(vic)},
            "demo": demo,
        }
    answers, asked = result.answer_pass, result.question_pass
    return {
        **common,
        "question": result.question,
        "prompt": answers.prompt if answers else None,
        "question_answer": answers.raw_answers if answers else [],
        "answer": answers.answers if answers else [],
        "weight": answers.weights if answers else [],
        "scores": answers.scores if answers else [],
        "ori_answer": asked.ori_answer if asked else None,
        "gq_prompt": asked.prompt if asked else None,
        "gq_output": asked.question_answer if asked else None,
        "provenance": {"model": result.model_provenance, "decoding": asdict(s.answer_decoding())},
        "demo": demo,
    }


def save_result(result: DemoResult, image: Image.Image, output_dir: Path, upload_name: str = "") -> SavedRecord:
    """Append `result` as one record to its task's run folder under `output_dir` (see the module docstring).

    Raises:
        VIGCError: When the folder cannot be written (the message names it).
    """
    output_dir = Path(output_dir)
    try:
        image_file = save_image(image, output_dir / "images")
        paths = RunPaths(output_dir, RUN_TASKS[result.settings.task])
        if not paths.run_info.exists():
            paths.run_dir.mkdir(parents=True, exist_ok=True)
            config = {"demo": {"images": str(image_file.parent.resolve())}}
            write_run_info(paths, task=paths.run_id, config=config, provenance={"model": result.model_provenance})
        with RecordWriter(paths.records(DEMO_WRITER)) as writer:
            prefix = f"{image_file.name}#{result.settings.task}#"
            index = sum(key.startswith(prefix) for key in writer.done_keys())
            record = build_record(result, image_file.name, index, upload_name)
            writer.write(record)
    except OSError as exc:
        raise VIGCError(f"Cannot save the record under {output_dir.resolve()}: {exc}") from exc
    logger.info("saved %s to %s", record["key"], writer.path)
    return SavedRecord(records_file=writer.path.resolve(), key=record["key"], image_file=image_file.resolve())
