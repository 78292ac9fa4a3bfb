# Carriage returns end lines: this comment ends herelet a = "x
yz";
  b = 2; # CRLF comment
in [ a b ]
