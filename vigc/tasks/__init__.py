"""Workflows, one module each: ``train`` (training), ``generate_llava`` and ``generate_vqa`` (data generation).

Importing a module registers its tasks in `vigc.registry.TASKS`; `vigc.builtins.register_all` imports them all.
"""
