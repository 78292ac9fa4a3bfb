"\${not} $${not} $x $ {y}"
