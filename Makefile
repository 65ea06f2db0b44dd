# SPDX-License-Identifier: MIT
# The README's commands. CMake is the build system; this file only drives it.
#   make test           configure, build, run every test (plain build)
#   make tour           build and run the main program
#   make bench          Release build, run bench/ (BENCH lines)
#   make bench-compare  the same beside the anchors in bench/compare/
#   make sanitize       the suite under ASan+UBSan, then TSan (clang)

JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BUILD ?= build
CMAKE_FLAGS ?=

.PHONY: all deps test tour bench bench-compare sanitize asan tsan install clean

all: $(BUILD)/Makefile
	cmake --build $(BUILD) -j $(JOBS)

deps:
	@scripts/deps.sh

$(BUILD)/Makefile: CMakeLists.txt | deps
	cmake -S . -B $(BUILD) -DJG_WERROR=ON $(CMAKE_FLAGS)

test: all
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

tour: all
	@scripts/tour.sh $(BUILD) $(TOUR_ARGS)

bench: deps
	cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DJG_WERROR=ON
	cmake --build build-release -j $(JOBS)
	@bench/run.sh build-release

bench-compare: deps
	@scripts/deps.sh bench
	cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DJG_WERROR=ON
	cmake --build build-release -j $(JOBS)
	@bench/compare/run.sh build-release

asan: deps
	cmake -S . -B build-asan -DJG_SANITIZE=address,undefined -DJG_WERROR=ON
	cmake --build build-asan -j $(JOBS)
	cd build-asan && JG_TEST_SCALE=10 \
	    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	    UBSAN_OPTIONS=print_stacktrace=1 \
	    ctest --output-on-failure -j $(JOBS)

tsan: deps
	CC=clang cmake -S . -B build-tsan -DJG_SANITIZE=thread -DJG_WERROR=ON
	cmake --build build-tsan -j $(JOBS)
	cd build-tsan && JG_TEST_SCALE=10 \
	    TSAN_OPTIONS=die_after_fork=0:halt_on_error=1 \
	    ctest --output-on-failure -j $(JOBS)

sanitize: asan tsan

install: all
	cmake --install $(BUILD)

clean:
	rm -rf build build-release build-asan build-tsan
