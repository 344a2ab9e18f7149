"""The samplers beyond the common levers, one small module each (DRY, XTC, mirostat v2,
dynamic temperature, banned phrases). :class:`~leverchat.engine.sampling.TokenPicker` calls
them in its fast path and its reference path alike."""
