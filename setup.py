"""ament_python package that also installs with pip (`pip install .`)."""

from glob import glob

from setuptools import find_packages, setup

package_name = "icub_guard"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.launch.py")),
        ("share/" + package_name + "/config", glob("config/*.yaml")),
    ],
    package_data={"icub_guard.web": ["static/*"], "icub_guard.models": ["*.pt"]},
    python_requires=">=3.11",
    # On a ROS install rclpy and the messages come from ROS itself (package.xml);
    # without one, `pip install .[ros]` brings the PyPI builds.
    install_requires=[
        "setuptools",
        "numpy",
        "scipy",
        "scikit-learn",
        "threadpoolctl",
        "opencv-python-headless",
        "torch",
        "torchvision",
        "pybullet",
        "matplotlib",
        "tqdm",
        "PyYAML",
        "aiohttp",
        "mcap",
        "mcap-ros2-support",
    ],
    extras_require={
        "ros": ["ros-rclpy[fastrtps]", "ros-sensor-msgs", "ros-std-msgs", "ros-std-srvs", "ros-diagnostic-msgs"],
        "test": ["pytest", "ruff", "selenium"],
        # attack libraries for test/test_interop.py (see requirements-interop.txt for pins)
        "interop": ["torchattacks", "foolbox", "adversarial-robustness-toolbox"],
    },
    zip_safe=True,
    maintainer="icub_guard developers",
    maintainer_email="icub-guard@example.org",
    description="Adversarially guarded online object recognition (reject-option RBF-SVM on deep features) for ROS 2",
    license="BSD-3-Clause",
    entry_points={
        "console_scripts": [
            "icub-guard = icub_guard.cli:main",
            "guard_node = icub_guard.ros.guard_node:main",
            "teacher_node = icub_guard.ros.teacher_node:main",
            "teacher_web_node = icub_guard.ros.teacher_web_node:main",
            "attack_node = icub_guard.ros.attack_node:main",
            "sim_camera_node = icub_guard.ros.sim_camera_node:main",
            "replay_node = icub_guard.ros.replay_node:main",
        ],
    },
)
