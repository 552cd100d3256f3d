"""The one error type the converter raises for bad input (printed without a traceback)."""


class ConvertError(Exception):
    pass
