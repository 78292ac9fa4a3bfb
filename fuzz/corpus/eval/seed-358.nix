# a line comment
[ 1 /* block
  comment */ 2 # trailing
  3 ]
