# OCR demo (demos/ocr/ocr.c): Tesseract as the inference stage. Included by the root CMakeLists.txt.
pkg_check_modules(TESSERACT IMPORTED_TARGET tesseract)
if(TESSERACT_FOUND)
  add_executable(ringfeed-ocr demos/ocr/ocr.c)
  target_include_directories(ringfeed-ocr PRIVATE ${STB_INCLUDE_DIR})
  target_link_libraries(ringfeed-ocr PRIVATE ringfeed PkgConfig::TESSERACT PkgConfig::CJSON m)
  install(TARGETS ringfeed-ocr RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  # Debian's Tesseract (and the OpenMP runtime it uses) is not built with sanitizers, whose
  # builds would report its memory handling, not ours: the test runs in plain builds only.
  if(RF_BUILD_TESTS AND NOT RF_SANITIZE)
    add_test(NAME ocr COMMAND ${CMAKE_COMMAND} -E env LC_ALL=C
      bash ${PROJECT_SOURCE_DIR}/demos/ocr/test_ocr.sh $<TARGET_FILE:ringfeed-ocr>)
    set_tests_properties(ocr PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77)
  endif()
else()
  message(STATUS "tesseract not found (Debian: libtesseract-dev tesseract-ocr-eng): no ringfeed-ocr demo")
endif()
