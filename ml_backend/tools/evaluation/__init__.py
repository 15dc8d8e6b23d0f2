"""The scribble benchmark: a robot annotator corrects each engine round by round and the scores are kept."""
