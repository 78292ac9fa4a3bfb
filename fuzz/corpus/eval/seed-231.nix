./fixtures/.
