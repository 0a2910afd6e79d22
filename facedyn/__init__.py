"""facedyn: scoring facial-expression videos of facial-palsy patients (Sunnybrook dynamics, synkinesis)."""

__version__ = "0.1.0"
