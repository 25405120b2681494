//! Runnable examples of the wsc gateway; see the `[[example]]` targets of this package.
