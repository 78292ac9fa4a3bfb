''  starts on first line
  next
  ''
