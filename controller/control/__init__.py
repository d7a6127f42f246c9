"""Control managers: validate admin and broker requests against the image and plan records."""
