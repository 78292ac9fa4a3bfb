''
  dollar: ''$ and ''${notinterp}
  quotes: '''
  newline escape: ''\n tab: ''\t backslash: ''\\
  plain backslash: \n stays
''
