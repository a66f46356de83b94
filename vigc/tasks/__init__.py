"""Workflows: ``train`` (`run_training`) and ``generate`` (`run_generation`), each reading top to bottom; the
generation tasks they run are ``generate_llava`` and ``generate_vqa``.

Importing a task module registers its tasks in `vigc.registry.TASKS`; `vigc.builtins.register_all` imports them all.
"""
