# OCR demo: demos/ocr/ocr.c (Tesseract as the inference stage).
