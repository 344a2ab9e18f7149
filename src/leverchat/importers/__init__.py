"""The formats ``leverchat profiles import`` understands, one module each.

:mod:`leverchat.profile_import` is the entry point; the modules here map one format each onto
a :class:`~leverchat.importers.common.Draft`.
"""
