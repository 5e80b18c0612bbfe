"""The teacher page: a browser front end for teaching the robot (served by `ros.teacher_web_node`)."""
