"""The machine: which devices there are and how to use them, what each precision means there,
what the devices can do at best (peaks), and what a run records about the machine."""
