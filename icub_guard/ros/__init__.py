"""ROS 2 adapters over the core: one small node per job. Importing this package needs rclpy."""
