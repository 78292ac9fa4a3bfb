[
  __curPos
]
