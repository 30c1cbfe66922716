"""Licence policy: taxonomy, lineage, purpose profiles, permissions and the gate.

* :mod:`.taxonomy`: use classes, licence triples, SPDX expressions, the combine rule.
* :mod:`.profiles`: the policy file (licence classes and purpose profiles).
* :mod:`.permissions`: recorded written acquisition permissions.
* :mod:`.lineage`: content terms and annotation terms along each dataset's ``derived_from`` chain.
* :mod:`.gate`: ``evaluate``, ``allowed_source_ids``, ``decide_source``, ``acquisition_check``.

See ``docs/policy.md``.
"""
