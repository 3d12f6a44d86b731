"""How good an encoder is, and what it finds: frozen features, kNN, linear probe and label
propagation (`features`), few-shot episodes (`few_shot`), intervals and standard errors
(`statistics`), the kNN monitor during pretraining (`monitor`), similarity search
(`similarity`) and which images to label (`label_selection`). Importing this package
imports nothing."""
