"""Stages: one module per stage, ``stages/<family>/<impl>.py``, each registering one class by its stable name.

The registry imports the modules listed in :data:`clipfactory.registry.STAGE_MODULES`.
"""
