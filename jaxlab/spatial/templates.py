"""Question, answer and task-description templates for the MultiSPA subtasks, and their rendering.

Every question type has about 30 question templates and 10 answer templates; every family has a few
task descriptions. Templates are `str.format` strings. All question templates of one subtask use the
same placeholders (`QUESTION_FIELDS` lists them; `render_question` needs those and ignores other
fields); every answer template holds exactly one backticked `{value}`, which `render_answer` fills
with `format_value(answer_kind, value)`.

Units, as the task descriptions say: millimetres for lengths and depths, whole degrees for angles
(the size of the turn, never negative), image coordinates `[ x , y ]` scaled to 0-1000 across the
width (x) and down the height (y) of the image. Vectors are `[ x , y , z ]` in millimetres in the
frame of Image-1's camera: x to the right, y down, z forward.

The object-movement templates are keyed without the track source ("object_movement_vector_dot");
the render functions accept either that key or the full subtask name
("object_movement_adt_vector_dot").

The wording is kept plain: a small model trained from scratch reads it.
"""

from __future__ import annotations

import math
import numbers
import string
from collections.abc import Sequence

import numpy as np

from jaxlab.spatial import subtasks

# ---------------------------------------------------------------------------------------------------
# Questions.

_DEPTH_VALUE_DOT = (
    "How far from the camera is the point under the {color} dot, in millimetres?",
    "What is the depth of the spot marked by the {color} dot?",
    "Give the depth, in mm, of the point covered by the {color} dot.",
    "The {color} dot marks a point in the scene. How deep is that point?",
    "Estimate the depth of the {color} dot's location in millimetres.",
    "What depth value does the point at the {color} dot have?",
    "How many millimetres away from the camera is the point marked in {color}?",
    "Tell me the depth at the {color} dot.",
    "Find the depth of the {color} marked point, measured in mm.",
    "Along the view direction, how far is the camera from the point under the {color} dot?",
    "Please estimate how deep the point under the {color} circle is.",
    "A {color} dot is drawn on the image. What is the depth there in millimetres?",
    "How far away is the surface under the {color} dot?",
    "Measure the depth of the point with the {color} mark.",
    "What is the depth, in millimetres, at the {color} circle?",
    "Look at the {color} dot. How far is that point from the camera?",
    "Could you give the depth of the point shown by the {color} dot?",
    "At what depth is the point marked with a {color} dot?",
    "How deep into the scene is the {color} dot's point?",
    "Estimate how many mm the {color} dot's point lies from the camera.",
    "What depth would you assign to the point under the {color} mark?",
    "The point of interest is marked by a {color} dot. What is its depth?",
    "Give the camera depth of the {color} dot in millimetres.",
    "How far does the {color} dot's point sit from the camera, in mm?",
    "Report the depth of the place marked in {color}.",
    "What is the depth of the scene point at the centre of the {color} dot?",
    "From the camera, how far is the point with the {color} circle on it?",
    "Please tell me the depth of the {color} marked spot in millimetres.",
    "Judge the depth of the point covered by the {color} dot.",
    "How far is it from the camera to the point under the {color} dot?",
)

_DEPTH_VALUE_COORD = (
    "What is the depth of the point at [ {x} , {y} ] in millimetres?",
    "How far from the camera is the point at [ {x} , {y} ]?",
    "Give the depth, in mm, of the pixel at [ {x} , {y} ].",
    "Estimate the depth at coordinates [ {x} , {y} ].",
    "What depth value does the point [ {x} , {y} ] have?",
    "How many millimetres away from the camera is the point at [ {x} , {y} ]?",
    "Tell me the depth at [ {x} , {y} ].",
    "Find the depth of the point located at [ {x} , {y} ].",
    "Consider the point at x = {x} and y = {y}. How deep is it?",
    "Please estimate the depth of the image point [ {x} , {y} ] in mm.",
    "How far away is the surface at [ {x} , {y} ]?",
    "Measure the depth at the position [ {x} , {y} ].",
    "What is the depth, in millimetres, of the location [ {x} , {y} ]?",
    "Look at the point [ {x} , {y} ]. How far is it from the camera?",
    "Could you give the depth of the point with coordinates [ {x} , {y} ]?",
    "At what depth is the point [ {x} , {y} ]?",
    "How deep into the scene is the point at [ {x} , {y} ]?",
    "Estimate how many mm the point [ {x} , {y} ] lies from the camera.",
    "What depth would you give the point at x {x}, y {y}?",
    "The point of interest is at [ {x} , {y} ]. What is its depth?",
    "Give the camera depth of the point [ {x} , {y} ] in millimetres.",
    "How far does the point at [ {x} , {y} ] sit from the camera, in mm?",
    "Report the depth at the image position [ {x} , {y} ].",
    "What is the depth of the scene point seen at [ {x} , {y} ]?",
    "From the camera, how far is the point at [ {x} , {y} ]?",
    "Please tell me the depth of the spot at [ {x} , {y} ] in millimetres.",
    "Judge the depth of the point found at [ {x} , {y} ].",
    "How far is it from the camera to the point at [ {x} , {y} ]?",
    "For the coordinates [ {x} , {y} ], what is the depth in mm?",
    "What is the depth at the spot where x is {x} and y is {y}?",
)

_DEPTH_COMPARE_DOT = (
    "Which point is closer to the camera, A or B?",
    "Of the two marked points A and B, which one is nearer to the camera?",
    "Is point A or point B closer to the camera?",
    "Which of the labelled points has the smaller depth: A or B?",
    "Between A and B, which point lies nearer to the viewer?",
    "Look at points A and B. Which one is closer to the camera?",
    "Which marked point is less far from the camera, A or B?",
    "Tell me which point, A or B, is nearer.",
    "Two points are marked, A and B. Which is closer to the camera?",
    "Which point sits nearer to the camera: A or B?",
    "Comparing A and B, which point has the smaller depth?",
    "Which of the points A and B is nearest to the camera?",
    "Is A closer to the camera than B, or is B closer? Give the label.",
    "Which point is less deep in the scene, A or B?",
    "Pick the point that is closer to the camera: A or B.",
    "Which labelled dot marks the nearer point, A or B?",
    "From the camera's view, which point is closer, A or B?",
    "Which one has the shorter distance to the camera, point A or point B?",
    "Name the point that is nearer to the camera, A or B.",
    "Of A and B, which point is closer?",
    "Which point lies closer to the camera, the one labelled A or the one labelled B?",
    "Please say which of the two points, A or B, is nearer to the camera.",
    "Which point has less depth, A or B?",
    "Between the points marked A and B, which one is nearer?",
    "Which of the two dots, A or B, is on the closer surface?",
    "Decide which point is closer to the camera: A or B.",
    "Is the nearer point A or B?",
    "Which point is closer to where the photo was taken, A or B?",
    "Looking at the two labels, which point is closer to the camera?",
    "Which point, marked A or B, is nearer to the viewer?",
)

_DEPTH_COMPARE_COORD = (
    "Point one is at [ {x1} , {y1} ] and point two is at [ {x2} , {y2} ]. Which is nearer to the camera?",
    "Give the coordinates of the closer point: [ {x1} , {y1} ] or [ {x2} , {y2} ].",
    "Is [ {x1} , {y1} ] or [ {x2} , {y2} ] closer to the camera?",
    "Which location has the smaller depth, [ {x1} , {y1} ] or [ {x2} , {y2} ]?",
    "Compare the depth at [ {x1} , {y1} ] with the depth at [ {x2} , {y2} ]. Which point is closer?",
    "Look at [ {x1} , {y1} ] and [ {x2} , {y2} ]. Which of them is nearer to the viewer?",
    "Tell me which point is less far from the camera: [ {x1} , {y1} ] or [ {x2} , {y2} ].",
    "Two points are given, [ {x1} , {y1} ] and [ {x2} , {y2} ]. Which lies closer to the camera?",
    "Pick the nearer of the points [ {x1} , {y1} ] and [ {x2} , {y2} ].",
    "Between the image points [ {x1} , {y1} ] and [ {x2} , {y2} ], which has less depth?",
    "Which position is nearer to the camera, [ {x1} , {y1} ] or [ {x2} , {y2} ]? Answer with its coordinates.",
    "From the camera's view, is the point at [ {x1} , {y1} ] or the point at [ {x2} , {y2} ] closer?",
    "Which of these two spots is closer: [ {x1} , {y1} ] or [ {x2} , {y2} ]?",
    "Name the coordinates of the point nearest to the camera among [ {x1} , {y1} ] and [ {x2} , {y2} ].",
    "Decide which point is nearer: the one at [ {x1} , {y1} ] or the one at [ {x2} , {y2} ].",
    "Please say which point, [ {x1} , {y1} ] or [ {x2} , {y2} ], sits closer to the camera.",
    "Which point has the shorter depth: [ {x1} , {y1} ] or [ {x2} , {y2} ]?",
    "Consider the points at [ {x1} , {y1} ] and at [ {x2} , {y2} ]. Which one is closer to the camera?",
    "Which of [ {x1} , {y1} ] and [ {x2} , {y2} ] shows a surface nearer to the camera?",
    "Of the coordinates [ {x1} , {y1} ] and [ {x2} , {y2} ], which belongs to the closer point?",
    ("Is the point at x {x1}, y {y1} closer to the camera than the point at x {x2}, y {y2}? "
     "Give the coordinates of the closer one."),
    "Find the closer point: [ {x1} , {y1} ] or [ {x2} , {y2} ].",
    "Which point would have the smaller depth value, [ {x1} , {y1} ] or [ {x2} , {y2} ]?",
    "Comparing [ {x1} , {y1} ] and [ {x2} , {y2} ], which point is nearer to where the photo was taken?",
    "Which spot is at a smaller distance from the camera, [ {x1} , {y1} ] or [ {x2} , {y2} ]?",
    "There are two points, [ {x1} , {y1} ] and [ {x2} , {y2} ]. Give the one that is nearer.",
    "Which point is less deep in the scene: [ {x1} , {y1} ] or [ {x2} , {y2} ]?",
    "Judge which of [ {x1} , {y1} ] and [ {x2} , {y2} ] is closer to the camera.",
    "Which coordinates mark the nearer point, [ {x1} , {y1} ] or [ {x2} , {y2} ]?",
    "Given [ {x1} , {y1} ] and [ {x2} , {y2} ], tell me which is nearer the viewer.",
)

_CORRESPONDENCE_MCQ = (
    "The {color} dot in Image-1 marks a point. Which labelled point in Image-2, A, B, C or D, is the same point?",
    "Which of the points A, B, C and D in Image-2 shows the same spot as the {color} dot in Image-1?",
    "Find the point in Image-2 that matches the {color} dot in Image-1. Answer with its letter.",
    "In Image-2 four points are labelled A to D. Which one is where the {color} dot of Image-1 lies?",
    "Which letter in Image-2 marks the same place as the {color} dot in Image-1?",
    "Match the {color} dot from Image-1 to one of the labelled points in Image-2.",
    ("The {color} dot in the first image is on some surface. Which of A, B, C, D in the second image is on the "
     "same spot?"),
    "Pick the label in Image-2 that corresponds to the {color} dot in Image-1.",
    "Which point in Image-2, A, B, C or D, is the match for the {color} point in Image-1?",
    "Look at the {color} dot in Image-1. Which labelled point in Image-2 shows that same spot?",
    "Tell me which of the four labels in Image-2 matches the {color} dot in Image-1.",
    "Where does the {color} dot of Image-1 appear in Image-2: at A, B, C or D?",
    "Which of the candidate points A, B, C and D in Image-2 is the same scene point as the {color} dot in Image-1?",
    "Choose the point in Image-2 that shows the same place as the {color} mark in Image-1.",
    "Among the labelled points in Image-2, which one corresponds to the {color} dot in Image-1?",
    "The {color} dot in Image-1 is seen again in Image-2. Which label is on it?",
    "Which label, A, B, C or D, marks the point in Image-2 that matches the {color} circle in Image-1?",
    "Identify the letter in Image-2 whose point matches the {color} dot of Image-1.",
    "Find where the {color} dot from Image-1 falls in Image-2, and give the letter of that point.",
    "Which of the labelled points in the second image is the same as the {color} dot in the first image?",
    "The same spot is marked by the {color} dot in Image-1 and by one letter in Image-2. Which letter?",
    "Please pick the point in Image-2 (A, B, C or D) that matches the {color} dot in Image-1.",
    "Which point in Image-2 lies on the same spot as the {color} marked point in Image-1?",
    "In Image-2, which labelled point is the {color} dot from Image-1?",
    "Match the point under the {color} dot in Image-1 with A, B, C or D in Image-2.",
    "Which option, A, B, C or D, in Image-2 corresponds to the {color} dot shown in Image-1?",
    "Decide which of the labelled points in Image-2 is the point marked in {color} in Image-1.",
    "Which labelled point of Image-2 shows the scene point under the {color} dot of Image-1?",
    "The {color} dot in Image-1 has one true match in Image-2. Is it A, B, C or D?",
    "Say which letter in Image-2 matches the {color} dot from Image-1.",
)

_CORRESPONDENCE_COORD = (
    "The point at [ {x} , {y} ] in Image-1 is also seen in Image-2. What are its coordinates in Image-2?",
    "In Image-2, where can the Image-1 point [ {x} , {y} ] be seen?",
    "Find the point in Image-2 that matches [ {x} , {y} ] in Image-1.",
    "Give the coordinates in Image-2 of the spot at [ {x} , {y} ] in Image-1.",
    "Which position in Image-2 shows the same place as [ {x} , {y} ] in Image-1?",
    "Look at [ {x} , {y} ] in Image-1. Where is that point in Image-2?",
    "Match the point [ {x} , {y} ] from Image-1 to its location in Image-2.",
    "In Image-2, what are the coordinates of the point found at [ {x} , {y} ] in Image-1?",
    "The point x = {x}, y = {y} in Image-1 appears somewhere in Image-2. Where?",
    "Tell me where the point at [ {x} , {y} ] in the first image lies in the second image.",
    "Please locate in Image-2 the point shown at [ {x} , {y} ] in Image-1.",
    "What is the matching position in Image-2 for [ {x} , {y} ] in Image-1?",
    "The same scene point is at [ {x} , {y} ] in Image-1. What are its coordinates in Image-2?",
    "Where in Image-2 would you find the point that sits at [ {x} , {y} ] in Image-1?",
    "Find the corresponding coordinates in Image-2 for the point [ {x} , {y} ] of Image-1.",
    "Follow the point [ {x} , {y} ] from Image-1 into Image-2. Where does it land?",
    "Give the location in the second image of the point at [ {x} , {y} ] in the first image.",
    "Image-1 has a point at [ {x} , {y} ]. Where is it in Image-2?",
    "Point [ {x} , {y} ] in Image-1 is on some surface. Where is that surface point in Image-2?",
    "Please give the Image-2 coordinates of the Image-1 point [ {x} , {y} ].",
    "At what position in Image-2 does the point [ {x} , {y} ] from Image-1 show up?",
    "Locate the point [ {x} , {y} ] of Image-1 in Image-2.",
    "Where is the point at x {x} and y {y} of Image-1 seen in Image-2?",
    "Find the match in Image-2 for the position [ {x} , {y} ] in Image-1 and give its coordinates.",
    "If a point is at [ {x} , {y} ] in Image-1, where is it in Image-2?",
    "What are the coordinates in Image-2 of the scene point seen at [ {x} , {y} ] in Image-1?",
    "The point [ {x} , {y} ] in Image-1 is visible in Image-2 too. Give its position there.",
    "Say where the Image-1 point [ {x} , {y} ] falls in Image-2.",
    "Which point of Image-2 is the same as [ {x} , {y} ] in Image-1?",
    "Map the point at [ {x} , {y} ] in Image-1 to Image-2 and give the coordinates.",
)

_CAMERA_LEFT_RIGHT = (
    "Did the camera move to the left or to the right?",
    "From Image-1 to Image-2, did the camera shift left or right?",
    "Was the camera moved left or right between the two images?",
    "Which way did the camera slide sideways, left or right?",
    "Tell me if the camera went left or right.",
    "Looking along the first camera's view, did the camera move toward its left or its right?",
    "Is the second camera to the left or to the right of the first one?",
    "In the sideways direction, did the camera travel left or right?",
    "Did the camera's position change toward the left or the right?",
    "Left or right: which way did the camera move?",
    "Compared with Image-1, is the camera of Image-2 further left or further right?",
    "Which side did the camera move to, left or right?",
    "Please say whether the camera moved left or right.",
    "Where did the camera go sideways between the shots, left or right?",
    "Did the camera step to its left or to its right?",
    "Was the second picture taken from a spot left or right of the first?",
    "Along the horizontal axis of the first camera, did it move left or right?",
    "Is the camera's sideways motion to the left or to the right?",
    "Which way was the camera moved horizontally, left or right?",
    "Judging from the two images, did the camera move left or right?",
    "Has the camera been moved to the left or to the right?",
    "Did the camera move in the left or the right direction?",
    "What is the sideways direction of the camera's motion, left or right?",
    "After the move, is the camera on the left or the right of where it started?",
    "Does the camera's motion go left or right?",
    "Tell me the horizontal direction the camera moved in: left or right.",
    "Did the camera shift toward the left side or the right side?",
    "Which way, left or right, did the camera travel from the first view to the second?",
    "Going from Image-1 to Image-2, which sideways direction did the camera take, left or right?",
    "Was the camera displaced to the left or the right?",
)

_CAMERA_UP_DOWN = (
    "Did the camera move up or down?",
    "From Image-1 to Image-2, did the camera go up or down?",
    "Was the camera raised or lowered between the two images? Answer up or down.",
    "Which way did the camera move vertically, up or down?",
    "Tell me if the camera went up or down.",
    "Is the second camera above or below the first one? Answer up or down.",
    "In the vertical direction, did the camera travel up or down?",
    "Did the camera's position change upward or downward? Answer up or down.",
    "Up or down: which way did the camera move?",
    "Compared with Image-1, is the camera of Image-2 higher or lower? Answer up or down.",
    "Please say whether the camera moved up or down.",
    "Did the camera rise or drop between the shots? Answer up or down.",
    "Along the vertical axis of the first camera, did it move up or down?",
    "Is the camera's vertical motion up or down?",
    "Judging from the two images, did the camera move up or down?",
    "Has the camera been moved up or down?",
    "Did the camera move in the up or the down direction?",
    "What is the vertical direction of the camera's motion, up or down?",
    "After the move, is the camera up or down from where it started?",
    "Does the camera's motion go up or down?",
    "Tell me the vertical direction the camera moved in: up or down.",
    "Was the second picture taken from a higher or a lower spot? Answer up or down.",
    "Which way, up or down, did the camera travel from the first view to the second?",
    "Going from Image-1 to Image-2, did the camera go up or down?",
    "Was the camera shifted up or shifted down?",
    "Which vertical way did the camera move, up or down?",
    "Did the camera climb up or sink down between the images?",
    "Relative to the first view, did the camera move up or down?",
    "Is the camera now up or down compared with the first image?",
    "In the up-down direction of the first camera, where did the camera move: up or down?",
)

_CAMERA_FORWARD_BACKWARD = (
    "Did the camera move forward or backward?",
    "From Image-1 to Image-2, did the camera go forward or backward?",
    "Did the camera move toward the scene or away from it? Answer forward or backward.",
    "Which way did the camera move along its view direction, forward or backward?",
    "Tell me if the camera went forward or backward.",
    "Is the second camera in front of or behind the first one? Answer forward or backward.",
    "Along the viewing direction, did the camera travel forward or backward?",
    "Forward or backward: which way did the camera move?",
    "Did the camera step forward or step back? Answer forward or backward.",
    "Please say whether the camera moved forward or backward.",
    "Compared with Image-1, was Image-2 taken from further forward or further back? Answer forward or backward.",
    "Did the camera move closer in or pull back? Answer forward or backward.",
    "Along the looking direction of the first camera, did it move forward or backward?",
    "Is the camera's motion forward or backward?",
    "Judging from the two images, did the camera move forward or backward?",
    "Has the camera been moved forward or backward?",
    "Did the camera move in the forward or the backward direction?",
    "What is the direction of the camera's motion along its view, forward or backward?",
    "After the move, is the camera ahead of or behind where it started? Answer forward or backward.",
    "Does the camera's motion go forward or backward?",
    "Tell me the direction the camera moved in depth: forward or backward.",
    "Which way, forward or backward, did the camera travel from the first view to the second?",
    "Going from Image-1 to Image-2, did the camera go forward or backward?",
    "Was the camera pushed forward or pulled backward?",
    "Did the camera advance or go back? Answer forward or backward.",
    "Relative to the first view, did the camera move forward or backward?",
    "Is the camera now forward or backward compared with the first image?",
    "In the direction the first camera faces, did the camera move forward or backward?",
    "Did the camera get nearer to what it was looking at, or move away? Answer forward or backward.",
    "Which way along the depth axis did the camera move, forward or backward?",
)

_CAMERA_YAW_DIRECTION = (
    "Did the camera turn left or right?",
    "From Image-1 to Image-2, did the camera rotate to the left or to the right?",
    "Which way did the camera turn around the vertical axis, left or right?",
    "Tell me if the camera turned left or right.",
    "Did the camera pan to the left or to the right?",
    "Yaw is the turn of the camera around the up direction. Was the yaw to the left or to the right?",
    "Left or right: which way did the camera turn?",
    "Please say whether the camera rotated left or right.",
    "Was the camera's view swung to the left or to the right?",
    "Compared with Image-1, is the camera in Image-2 facing more to the left or more to the right?",
    "Did the camera's heading change to the left or to the right?",
    "Which way did the camera look after the turn, left or right?",
    "Judging from the two images, did the camera turn left or right?",
    "Has the camera been rotated left or right?",
    "Did the camera rotate in the left or the right direction?",
    "What is the direction of the camera's turn, left or right?",
    "Is the camera's yaw rotation to the left or to the right?",
    "Does the camera turn toward the left or the right?",
    "Tell me the turning direction of the camera: left or right.",
    "Which way, left or right, did the camera turn from the first view to the second?",
    "Going from Image-1 to Image-2, did the camera swing left or right?",
    "Did the camera face further left or further right in the second image?",
    "Around the gravity axis, did the camera turn left or right?",
    "Relative to the first view, did the camera rotate left or right?",
    "Did the camera pan left or pan right between the shots?",
    "Was the camera turned toward its left or toward its right?",
    "Which horizontal turn did the camera make, left or right?",
    "Did the view direction of the camera move left or right?",
    "Is the camera now pointing more to the left or more to the right?",
    "How did the camera turn, to the left or to the right?",
)

_CAMERA_PITCH_DIRECTION = (
    "Did the camera tilt up or down?",
    "From Image-1 to Image-2, did the camera tilt upward or downward? Answer up or down.",
    "Which way did the camera's view tilt, up or down?",
    "Tell me if the camera tilted up or down.",
    "Pitch is the up-down tilt of the camera. Was the pitch change up or down?",
    "Up or down: which way did the camera tilt?",
    "Please say whether the camera tilted up or down.",
    "Was the camera's view raised or lowered? Answer up or down.",
    "Compared with Image-1, is the camera in Image-2 looking more up or more down?",
    "Did the look direction of the camera move up or down?",
    "Judging from the two images, did the camera tilt up or down?",
    "Has the camera been tilted up or down?",
    "Did the camera rotate up or down?",
    "What is the direction of the camera's tilt, up or down?",
    "Is the camera's pitch rotation up or down?",
    "Does the camera tilt toward the ceiling or the floor? Answer up or down.",
    "Tell me the tilting direction of the camera: up or down.",
    "Which way, up or down, did the camera tilt from the first view to the second?",
    "Going from Image-1 to Image-2, did the camera's view tip up or down?",
    "Did the camera look higher or lower in the second image? Answer up or down.",
    "Relative to the first view, did the camera tilt up or down?",
    "Was the camera tipped up or tipped down between the shots?",
    "Did the camera nod up or nod down?",
    "Which vertical turn did the camera make, up or down?",
    "Is the camera now pointing more up or more down?",
    "How did the camera tilt, up or down?",
    "Did the camera aim up or aim down after the move?",
    "Was the camera's pitch raised (up) or lowered (down)?",
    "Did the view of the camera rise or fall? Answer up or down.",
    "In which direction did the camera tilt, up or down?",
)

_CAMERA_YAW_DEGREES = (
    "How many degrees did the camera turn left or right?",
    "By how many degrees did the camera rotate around the vertical axis?",
    "What is the size of the camera's yaw turn in degrees?",
    "How large is the camera's left-right turn, in degrees?",
    "Give the yaw angle between the two views in degrees.",
    "How far did the camera pan, measured in degrees?",
    "Yaw is the turn around the up direction. How many degrees of yaw are there between Image-1 and Image-2?",
    "Tell me the camera's horizontal turn angle in degrees.",
    "How many degrees of turn separate the two camera headings?",
    "Estimate the yaw change of the camera in degrees.",
    "What is the angle, in degrees, of the camera's sideways turn?",
    "By what angle did the camera swing left or right?",
    "Please give the number of degrees the camera turned horizontally.",
    "How much did the camera's heading change, in degrees?",
    "From the first view to the second, how many degrees did the camera yaw?",
    "What is the yaw rotation of the camera in whole degrees?",
    "How big was the camera's pan in degrees?",
    "Measure the camera's left-right rotation in degrees.",
    "How many degrees did the view direction turn around the gravity axis?",
    "Give the size of the heading change between the two images in degrees.",
    "What angle did the camera turn through horizontally?",
    "By how many degrees is the second view turned from the first, left or right?",
    "Estimate how many degrees the camera panned.",
    "How many degrees of yaw did the camera make?",
    "Find the yaw angle of the camera's motion in degrees.",
    "How far did the camera rotate sideways, in degrees?",
    "What is the camera's turn angle around the vertical, in degrees?",
    "Report the camera's yaw change in degrees.",
    "How many degrees apart are the two camera headings?",
    "Judging from the two images, how many degrees did the camera turn left or right?",
)

_CAMERA_PITCH_DEGREES = (
    "How many degrees did the camera tilt up or down?",
    "By how many degrees did the camera's pitch change?",
    "What is the size of the camera's tilt in degrees?",
    "How large is the camera's up-down rotation, in degrees?",
    "Give the pitch angle between the two views in degrees.",
    ("Pitch is the up-down tilt of the camera. How many degrees of pitch change are there between Image-1 and "
     "Image-2?"),
    "Tell me the camera's tilt angle in degrees.",
    "How many degrees of tilt separate the two views?",
    "Estimate the pitch change of the camera in degrees.",
    "What is the angle, in degrees, of the camera's up-down tilt?",
    "By what angle did the camera tip up or down?",
    "Please give the number of degrees the camera tilted.",
    "How much did the up-down angle of the camera's view change, in degrees?",
    "From the first view to the second, how many degrees did the camera pitch?",
    "What is the pitch rotation of the camera in whole degrees?",
    "How big was the camera's tilt in degrees?",
    "Measure the camera's up-down rotation in degrees.",
    "How many degrees did the view direction tilt toward the ceiling or the floor?",
    "Give the size of the tilt change between the two images in degrees.",
    "What angle did the camera tilt through?",
    "By how many degrees is the second view tilted from the first, up or down?",
    "Estimate how many degrees the camera tilted.",
    "How many degrees of pitch did the camera make?",
    "Find the pitch angle of the camera's motion in degrees.",
    "How far did the camera rotate up or down, in degrees?",
    "Report the camera's pitch change in degrees.",
    "How many degrees apart are the two camera tilts?",
    "Judging from the two images, how many degrees did the camera tilt up or down?",
    "What is the camera's change in tilt, in degrees?",
    "How much did the camera nod up or down, in degrees?",
)

_CAMERA_DISTANCE = (
    "How far did the camera move, in millimetres?",
    "What is the distance between the two camera positions in mm?",
    "How many millimetres did the camera travel between Image-1 and Image-2?",
    "Give the length of the camera's move in millimetres.",
    "Estimate how far apart the two camera positions are.",
    "Tell me the distance the camera moved, in mm.",
    "What is the straight-line distance from the first camera to the second camera?",
    "How much did the camera's position change, in millimetres?",
    "Please give the camera's travel distance in mm.",
    "How far is the second camera from the first one?",
    "By how many millimetres was the camera moved?",
    "Measure the camera's shift between the two shots in millimetres.",
    "What distance separates the places where the two images were taken?",
    "Find the total distance of the camera's motion in mm.",
    "How long is the camera's move from the first view to the second?",
    "What is the size of the camera's displacement in millimetres?",
    "How many mm lie between the two camera centres?",
    "Estimate the camera's translation distance in millimetres.",
    "How far did the camera go between the two images?",
    "Report how far the camera moved, in mm.",
    "Judging from the two images, how far did the camera travel?",
    "What is the camera's moving distance in millimetres?",
    "Give the gap between the two camera positions in mm.",
    "How much ground did the camera cover between the shots, in millimetres?",
    "What is the distance the camera covered from Image-1 to Image-2?",
    "Tell me how many millimetres the camera shifted.",
    "How far was the camera carried between the two pictures?",
    "Find the straight-line distance the camera moved, in mm.",
    "What is the length of the camera's displacement?",
    "How far apart, in millimetres, are the first and the second camera?",
)

_CAMERA_VECTOR = (
    "What is the camera's displacement vector in millimetres?",
    "Give the camera's move as [ x , y , z ] in mm in the first camera's frame.",
    "Where is the second camera relative to the first? Answer as a vector in mm.",
    "Write the camera's translation from Image-1 to Image-2 as [ x , y , z ].",
    "How did the camera move along x, y and z, in millimetres?",
    "Tell me the camera's shift along the right, down and forward axes of the first camera.",
    "Estimate the vector from the first camera position to the second, in mm.",
    "What is the position of the second camera in the first camera's frame, in millimetres?",
    "Please give the camera's motion as three numbers: x, y and z in mm.",
    "Find the camera's displacement vector between the two images.",
    "How far did the camera move along each axis of the first camera?",
    "Give the x, y and z movement of the camera in millimetres.",
    "What translation vector takes the first camera to the second?",
    "Report the camera's move as a vector [ x , y , z ].",
    "Measure the camera's displacement along x (right), y (down) and z (forward).",
    "What is the camera's movement vector from the first view to the second?",
    "Write down the camera's shift as [ x , y , z ] in millimetres.",
    "Estimate the camera's displacement in the frame of the camera of Image-1.",
    "Along the axes of the first camera, how much did the camera move?",
    "Give the three parts of the camera's translation in mm.",
    "Where did the camera end up relative to its first position? Use a vector in mm.",
    "What are the x, y and z parts of the camera's motion?",
    "Tell me the displacement vector of the camera in millimetres.",
    "How did the camera's position change, as a vector in the first camera's frame?",
    "Give the offset of the second camera from the first as [ x , y , z ].",
    "Find the camera's move along right, down and forward in mm.",
    "What vector describes the camera's change of position?",
    "Please report the camera's translation vector in millimetres.",
    "Judging from the two images, what is the camera's displacement vector?",
    "Express the camera's move from Image-1 to Image-2 as a vector.",
)

_MOVEMENT_DISTANCE_DOT = (
    "How far did the point under the {color} dot move between Image-1 and Image-2, in mm?",
    "The {color} dot in Image-1 marks a point on a moving thing. How many millimetres did that point travel?",
    "What distance did the {color} marked point cover from the first frame to the second?",
    "Give the distance moved by the point at the {color} dot, in millimetres.",
    "By how much did the point marked in {color} move between the two frames?",
    "Tell me how far the {color} dot's point went in the scene.",
    "How many mm did the point under the {color} dot shift?",
    "Estimate the distance travelled by the point with the {color} mark.",
    "What is the size of the motion of the {color} dot's point between the images?",
    "From Image-1 to Image-2, how far did the {color} marked point move?",
    "Please give the movement distance of the point shown by the {color} dot.",
    "How far has the point under the {color} circle moved?",
    "Measure the distance the {color} dot's point moved, in millimetres.",
    "The point at the {color} dot moves over time. How far did it go between the two frames?",
    "What is the straight-line distance between the old and new positions of the {color} marked point?",
    "How much did the {color} dot's point change position, in mm?",
    "Find how many millimetres the {color} marked point travelled.",
    "Look at the {color} dot in Image-1. How far has that point moved by the time of Image-2?",
    "By how many millimetres did the point marked by the {color} dot move?",
    "Report the moving distance of the {color} dot's point.",
    "What distance lies between where the {color} marked point was and where it is in Image-2?",
    "How long is the straight move of the {color} dot's point between the frames?",
    "Estimate in mm how far the point marked in {color} moved in the world.",
    "Tell me the displacement length of the {color} marked point.",
    "How far was the point under the {color} dot carried between the two frames?",
    "Give the size of the {color} dot's point movement in millimetres.",
    "What is the travel distance of the {color} marked point from Image-1 to Image-2?",
    "How many millimetres apart are the two positions of the {color} dot's point?",
    "Judging from the two frames, how far did the {color} marked point move?",
    "The object under the {color} dot may have moved. How far did that point move, in mm?",
)

_MOVEMENT_DISTANCE_COORD = (
    "How far did the point at [ {x} , {y} ] in Image-1 move by Image-2, in mm?",
    "The point at [ {x} , {y} ] in Image-1 is on a moving thing. How many millimetres did it travel?",
    "What distance did the point at [ {x} , {y} ] of Image-1 cover from the first frame to the second?",
    "Give the distance moved by the point seen at [ {x} , {y} ] in Image-1, in millimetres.",
    "By how much did the point [ {x} , {y} ] of Image-1 move between the two frames?",
    "Tell me how far the point at [ {x} , {y} ] in the first frame went in the scene.",
    "How many mm did the point at [ {x} , {y} ] in Image-1 shift?",
    "Estimate the distance travelled by the point located at [ {x} , {y} ] in Image-1.",
    "What is the size of the motion of the Image-1 point [ {x} , {y} ] between the frames?",
    "From Image-1 to Image-2, how far did the point at [ {x} , {y} ] move?",
    "Please give the movement distance of the point at x = {x}, y = {y} in Image-1.",
    "How far has the point found at [ {x} , {y} ] in Image-1 moved?",
    "Measure the distance the point [ {x} , {y} ] of Image-1 moved, in millimetres.",
    "The point at [ {x} , {y} ] in Image-1 moves over time. How far did it go between the two frames?",
    "What is the straight-line distance between the old and new positions of the Image-1 point [ {x} , {y} ]?",
    "How much did the point at [ {x} , {y} ] in Image-1 change position, in mm?",
    "Find how many millimetres the point at [ {x} , {y} ] in Image-1 travelled.",
    "Look at [ {x} , {y} ] in Image-1. How far has that point moved by the time of Image-2?",
    "By how many millimetres did the point at [ {x} , {y} ] of the first frame move?",
    "Report the moving distance of the point at [ {x} , {y} ] in Image-1.",
    "What distance lies between where the point at [ {x} , {y} ] in Image-1 was and where it is in Image-2?",
    "How long is the straight move of the Image-1 point [ {x} , {y} ] between the frames?",
    "Estimate in mm how far the point at [ {x} , {y} ] in Image-1 moved in the world.",
    "Tell me the displacement length of the point at [ {x} , {y} ] in Image-1.",
    "How far was the point at [ {x} , {y} ] in Image-1 carried between the two frames?",
    "Give the size of the movement of the Image-1 point [ {x} , {y} ] in millimetres.",
    "What is the travel distance of the point at [ {x} , {y} ] from Image-1 to Image-2?",
    "How many millimetres apart are the two positions of the point at [ {x} , {y} ] in Image-1?",
    "Judging from the two frames, how far did the point at x {x}, y {y} in Image-1 move?",
    "The object at [ {x} , {y} ] in Image-1 may have moved. How far did that point move, in mm?",
)

_MOVEMENT_VECTOR_DOT = (
    "How did the point under the {color} dot move between Image-1 and Image-2? Give the vector in mm.",
    "Give the displacement of the {color} marked point as [ x , y , z ] in millimetres.",
    "What is the motion vector of the point at the {color} dot, in the first camera's frame?",
    "The {color} dot in Image-1 marks a point on a moving thing. What is its displacement vector?",
    "Write the move of the {color} dot's point as [ x , y , z ] in mm.",
    "Tell me how far the {color} marked point moved along x, y and z.",
    "Estimate the displacement vector of the point under the {color} dot.",
    "What is the change of position of the {color} dot's point, as a vector in millimetres?",
    "From Image-1 to Image-2, how did the point with the {color} mark move along each axis?",
    "Please give the movement of the point shown by the {color} dot as three numbers in mm.",
    "Find the x, y and z movement of the point under the {color} circle.",
    "Measure the {color} dot's point displacement along right, down and forward.",
    "What vector takes the {color} marked point from its place in Image-1 to its place in Image-2?",
    "Give the [ x , y , z ] displacement, in mm, of the point marked in {color}.",
    "How much did the {color} dot's point move along x, along y and along z?",
    "Report the motion of the {color} marked point as a vector.",
    "Look at the {color} dot in Image-1. What is that point's displacement vector by the time of Image-2?",
    "In the frame of the first camera, how did the point under the {color} dot move?",
    "Estimate the move of the {color} dot's point as a vector in millimetres.",
    "What are the x, y and z parts of the {color} marked point's motion?",
    "Tell me the displacement vector of the point under the {color} dot.",
    "Express the movement of the {color} dot's point between the frames as [ x , y , z ].",
    "How did the position of the point marked by the {color} dot change, in mm along each axis?",
    "Find the translation vector of the point with the {color} mark.",
    "Give the offset between the two positions of the {color} dot's point as a vector.",
    "What is the point's movement vector, for the point under the {color} dot?",
    "Please report the displacement of the {color} marked point in millimetres along x, y and z.",
    "Judging from the two frames, what is the motion vector of the {color} dot's point?",
    "The object under the {color} dot may have moved. What is the displacement vector of that point?",
    "Along the first camera's axes, how far did the point under the {color} dot move?",
)

_MOVEMENT_VECTOR_COORD = (
    "How did the point at [ {x} , {y} ] in Image-1 move by Image-2? Give the vector in mm.",
    "Give the displacement of the Image-1 point [ {x} , {y} ] as [ x , y , z ] in millimetres.",
    "What is the motion vector of the point at [ {x} , {y} ] in Image-1, in the first camera's frame?",
    "The point at [ {x} , {y} ] in Image-1 is on a moving thing. What is its displacement vector?",
    "Write the move of the point at [ {x} , {y} ] of Image-1 as [ x , y , z ] in mm.",
    "Tell me how far the point at [ {x} , {y} ] in Image-1 moved along x, y and z.",
    "Estimate the displacement vector of the point located at [ {x} , {y} ] in Image-1.",
    "What is the change of position of the Image-1 point [ {x} , {y} ], as a vector in millimetres?",
    "From Image-1 to Image-2, how did the point at [ {x} , {y} ] move along each axis?",
    "Please give the movement of the point at x = {x}, y = {y} in Image-1 as three numbers in mm.",
    "Find the x, y and z movement of the point found at [ {x} , {y} ] in Image-1.",
    "Measure the displacement of the Image-1 point [ {x} , {y} ] along right, down and forward.",
    "What vector takes the point at [ {x} , {y} ] in Image-1 to its place in Image-2?",
    "Give the displacement, in mm, of the point at [ {x} , {y} ] in the first frame.",
    "How much did the point at [ {x} , {y} ] of Image-1 move along x, along y and along z?",
    "Report the motion of the point at [ {x} , {y} ] in Image-1 as a vector.",
    "Look at [ {x} , {y} ] in Image-1. What is that point's displacement vector by the time of Image-2?",
    "In the frame of the first camera, how did the point at [ {x} , {y} ] of Image-1 move?",
    "Estimate the move of the Image-1 point [ {x} , {y} ] as a vector in millimetres.",
    "What are the x, y and z parts of the motion of the point at [ {x} , {y} ] in Image-1?",
    "Tell me the displacement vector of the point at [ {x} , {y} ] in Image-1.",
    "Express the movement of the Image-1 point [ {x} , {y} ] between the frames as a vector.",
    "How did the position of the point at [ {x} , {y} ] in Image-1 change, in mm along each axis?",
    "Find the translation vector of the point at [ {x} , {y} ] in the first frame.",
    "Give the offset between the two positions of the Image-1 point [ {x} , {y} ] as a vector.",
    "What is the movement vector of the point seen at [ {x} , {y} ] in Image-1?",
    "Please report the displacement of the point at [ {x} , {y} ] in Image-1 in millimetres along x, y and z.",
    "Judging from the two frames, what is the motion vector of the point at x {x}, y {y} in Image-1?",
    "The object at [ {x} , {y} ] in Image-1 may have moved. What is the displacement vector of that point?",
    "Along the first camera's axes, how far did the point at [ {x} , {y} ] in Image-1 move?",
)

_OBJECT_HEIGHT = (
    "How tall is the {object}, in millimetres?",
    "What is the height of the {object}?",
    "Give the height of the {object} in mm.",
    "Estimate how high the {object} is.",
    "How many millimetres tall is the {object}?",
    "Tell me the height of the {object}.",
    "From bottom to top, how tall is the {object}?",
    "What is the vertical size of the {object} in millimetres?",
    "Please estimate the height of the {object} in mm.",
    "Measure how tall the {object} is.",
    "How high does the {object} reach from its lowest to its highest point?",
    "Find the height of the {object}, in millimetres.",
    "What height would you give the {object}?",
    "Look at the {object}. How tall is it?",
    "How big is the {object} in the up-down direction?",
    "Report the height of the {object} in mm.",
    "Could you tell me how tall the {object} is?",
    "What is the {object}'s height in millimetres?",
    "Judging from the images, how tall is the {object}?",
    "Estimate the top-to-bottom size of the {object}.",
    "How many mm high is the {object}?",
    "Give the vertical extent of the {object}.",
    "What is the size of the {object} along the up direction?",
    "How tall would you say the {object} is, in millimetres?",
    "Tell me how many millimetres the {object} stands.",
    "Please give the {object}'s height.",
    "How high is the {object}?",
    "Find how tall the {object} is in mm.",
    "What is the distance from the bottom to the top of the {object}?",
    "Measure the height of the {object} in millimetres.",
)

_OBJECT_WIDTH = (
    "How wide is the {object}, in millimetres?",
    "What is the width of the {object}?",
    "Give the width of the {object} in mm.",
    "Estimate how wide the {object} is.",
    "How many millimetres wide is the {object}?",
    "Tell me the width of the {object}.",
    "How long is the shorter side of the {object} along the floor?",
    "What is the size of the {object} across its short side, in millimetres?",
    "Please estimate the width of the {object} in mm.",
    "Measure how wide the {object} is.",
    "How wide is the {object} along its shorter horizontal side?",
    "Find the width of the {object}, in millimetres.",
    "What width would you give the {object}?",
    "Look at the {object}. How wide is it?",
    "How big is the {object} across its narrow side?",
    "Report the width of the {object} in mm.",
    "Could you tell me how wide the {object} is?",
    "What is the {object}'s width in millimetres?",
    "Judging from the images, how wide is the {object}?",
    "Estimate the short horizontal size of the {object}.",
    "How many mm wide is the {object}?",
    "Give the shorter horizontal extent of the {object}.",
    "What is the size of the {object} along its short side?",
    "How wide would you say the {object} is, in millimetres?",
    "Tell me how many millimetres across the {object} is on its short side.",
    "Please give the {object}'s width.",
    "How narrow is the {object}, in millimetres?",
    "Find how wide the {object} is in mm.",
    "What is the distance across the short side of the {object}?",
    "Measure the width of the {object} in millimetres.",
)

_OBJECT_LENGTH = (
    "How long is the {object}, in millimetres?",
    "What is the length of the {object}?",
    "Give the length of the {object} in mm.",
    "Estimate how long the {object} is.",
    "How many millimetres long is the {object}?",
    "Tell me the length of the {object}.",
    "How long is the longer side of the {object} along the floor?",
    "What is the size of the {object} along its long side, in millimetres?",
    "Please estimate the length of the {object} in mm.",
    "Measure how long the {object} is.",
    "How long is the {object} along its longer horizontal side?",
    "Find the length of the {object}, in millimetres.",
    "What length would you give the {object}?",
    "Look at the {object}. How long is it?",
    "How big is the {object} along its long side?",
    "Report the length of the {object} in mm.",
    "Could you tell me how long the {object} is?",
    "What is the {object}'s length in millimetres?",
    "Judging from the images, how long is the {object}?",
    "Estimate the long horizontal size of the {object}.",
    "How many mm long is the {object}?",
    "Give the longer horizontal extent of the {object}.",
    "What is the size of the {object} from end to end?",
    "How long would you say the {object} is, in millimetres?",
    "Tell me how many millimetres the {object} measures on its long side.",
    "Please give the {object}'s length.",
    "From one end to the other, how long is the {object}?",
    "Find how long the {object} is in mm.",
    "What is the distance along the long side of the {object}?",
    "Measure the length of the {object} in millimetres.",
)

QUESTIONS: dict[str, tuple[str, ...]] = {
    "depth_value_dot": _DEPTH_VALUE_DOT,
    "depth_value_coord": _DEPTH_VALUE_COORD,
    "depth_compare_dot": _DEPTH_COMPARE_DOT,
    "depth_compare_coord": _DEPTH_COMPARE_COORD,
    "correspondence_mcq": _CORRESPONDENCE_MCQ,
    "correspondence_coord": _CORRESPONDENCE_COORD,
    "camera_left_right": _CAMERA_LEFT_RIGHT,
    "camera_up_down": _CAMERA_UP_DOWN,
    "camera_forward_backward": _CAMERA_FORWARD_BACKWARD,
    "camera_yaw_direction": _CAMERA_YAW_DIRECTION,
    "camera_pitch_direction": _CAMERA_PITCH_DIRECTION,
    "camera_yaw_degrees": _CAMERA_YAW_DEGREES,
    "camera_pitch_degrees": _CAMERA_PITCH_DEGREES,
    "camera_distance": _CAMERA_DISTANCE,
    "camera_vector": _CAMERA_VECTOR,
    "object_movement_distance_dot": _MOVEMENT_DISTANCE_DOT,
    "object_movement_distance_coord": _MOVEMENT_DISTANCE_COORD,
    "object_movement_vector_dot": _MOVEMENT_VECTOR_DOT,
    "object_movement_vector_coord": _MOVEMENT_VECTOR_COORD,
    "object_size_height": _OBJECT_HEIGHT,
    "object_size_width": _OBJECT_WIDTH,
    "object_size_length": _OBJECT_LENGTH,
}

# ---------------------------------------------------------------------------------------------------
# Answers: exactly one backticked {value} each.

_DEPTH_VALUE_ANSWERS = (
    "The depth is `{value}` mm.",
    "That point is about `{value}` mm from the camera.",
    "It lies `{value}` millimetres away.",
    "At that spot the depth is `{value}` mm.",
    "I estimate a depth of `{value}` mm.",
    "About `{value}` mm.",
    "The point is at a depth of `{value}` millimetres.",
    "Its distance from the camera is `{value}` mm.",
    "Depth: `{value}` mm.",
    "It is roughly `{value}` mm deep.",
)

_DEPTH_COMPARE_DOT_ANSWERS = (
    "Point `{value}` is the closer of the two.",
    "The nearer point is `{value}`.",
    "`{value}` is closer.",
    "It is point `{value}`.",
    "Point `{value}` has the smaller depth.",
    "The closer one is `{value}`.",
    "`{value}` is nearer to the camera.",
    "The answer is `{value}`.",
    "The camera is nearer to point `{value}`.",
    "I would say `{value}` is closer.",
)

_DEPTH_COMPARE_COORD_ANSWERS = (
    "The point at `{value}` is the closer of the two.",
    "The nearer point is `{value}`.",
    "`{value}` is closer.",
    "It is the point `{value}`.",
    "The point `{value}` has the smaller depth.",
    "The closer one is at `{value}`.",
    "`{value}` is nearer to the camera.",
    "The answer is `{value}`.",
    "The point at `{value}` lies nearer to the viewer.",
    "I would say `{value}` is closer.",
)

_CORRESPONDENCE_MCQ_ANSWERS = (
    "The match is point `{value}`.",
    "Point `{value}` in Image-2 is the same spot.",
    "It is `{value}`.",
    "The answer is `{value}`.",
    "The dot matches point `{value}`.",
    "`{value}` marks the same place in Image-2.",
    "The same point is labelled `{value}` in Image-2.",
    "I pick `{value}`.",
    "Label `{value}` is the match.",
    "The correct choice is `{value}`.",
)

_CORRESPONDENCE_COORD_ANSWERS = (
    "In Image-2 the point is at `{value}`.",
    "The match is at `{value}`.",
    "It appears at `{value}` in Image-2.",
    "The answer is `{value}`.",
    "The same point is found at `{value}`.",
    "Its position in Image-2 is `{value}`.",
    "That spot is at `{value}` in the second image.",
    "I locate it at `{value}`.",
    "The matching coordinates are `{value}`.",
    "It shows up at `{value}`.",
)

_LEFT_RIGHT_ANSWERS = (
    "The camera moved to the `{value}`.",
    "It went `{value}`.",
    "The camera's shift was `{value}`.",
    "The answer is `{value}`.",
    "The sideways move is to the `{value}`.",
    "The camera travelled `{value}`.",
    "It moved toward the `{value}`.",
    "The second camera is to the `{value}` of the first.",
    "Sideways, the camera went `{value}`.",
    "`{value}`.",
)

_UP_DOWN_ANSWERS = (
    "The camera moved `{value}`.",
    "It went `{value}`.",
    "The camera's shift was `{value}`.",
    "The answer is `{value}`.",
    "Vertically, the camera went `{value}`.",
    "The camera travelled `{value}`.",
    "It moved `{value}` from where it started.",
    "The camera was moved `{value}`.",
    "The vertical move is `{value}`.",
    "`{value}`.",
)

_FORWARD_BACKWARD_ANSWERS = (
    "The camera moved `{value}`.",
    "It went `{value}`.",
    "The camera's shift was `{value}`.",
    "The answer is `{value}`.",
    "Along its view, the camera went `{value}`.",
    "The camera travelled `{value}`.",
    "It moved `{value}` from where it started.",
    "The camera was moved `{value}`.",
    "The move along the view direction is `{value}`.",
    "`{value}`.",
)

_YAW_DIRECTION_ANSWERS = (
    "The camera turned `{value}`.",
    "It rotated to the `{value}`.",
    "The camera panned `{value}`.",
    "The answer is `{value}`.",
    "The turn is to the `{value}`.",
    "The view swung `{value}`.",
    "It turned toward the `{value}`.",
    "The camera's heading moved `{value}`.",
    "The yaw is to the `{value}`.",
    "`{value}`.",
)

_PITCH_DIRECTION_ANSWERS = (
    "The camera tilted `{value}`.",
    "It tipped `{value}`.",
    "The view moved `{value}`.",
    "The answer is `{value}`.",
    "The tilt is `{value}`.",
    "The camera turned `{value}`.",
    "It is now looking more `{value}`.",
    "The camera's pitch went `{value}`.",
    "The camera rotated `{value}`.",
    "`{value}`.",
)

_YAW_DEGREES_ANSWERS = (
    "The camera turned `{value}` degrees.",
    "The yaw change is `{value}` degrees.",
    "It rotated about `{value}` degrees.",
    "The answer is `{value}` degrees.",
    "The heading changed by `{value}` degrees.",
    "The pan angle is `{value}` degrees.",
    "I estimate `{value}` degrees of turn.",
    "The camera swung `{value}` degrees.",
    "The turn measures `{value}` degrees.",
    "About `{value}` degrees.",
)

_PITCH_DEGREES_ANSWERS = (
    "The camera tilted `{value}` degrees.",
    "The pitch change is `{value}` degrees.",
    "It rotated about `{value}` degrees up or down.",
    "The answer is `{value}` degrees.",
    "The tilt changed by `{value}` degrees.",
    "The tilt angle is `{value}` degrees.",
    "I estimate `{value}` degrees of tilt.",
    "The camera tipped `{value}` degrees.",
    "The tilt measures `{value}` degrees.",
    "About `{value}` degrees.",
)

_CAMERA_DISTANCE_ANSWERS = (
    "The camera moved `{value}` mm.",
    "The two camera positions are `{value}` mm apart.",
    "It travelled about `{value}` millimetres.",
    "The answer is `{value}` mm.",
    "The distance is `{value}` mm.",
    "The camera shifted by `{value}` mm.",
    "I estimate `{value}` mm.",
    "The camera's move is `{value}` millimetres long.",
    "The gap between the cameras is `{value}` mm.",
    "About `{value}` mm.",
)

_CAMERA_VECTOR_ANSWERS = (
    "The displacement is `{value}` mm.",
    "The camera moved by `{value}` millimetres.",
    "In the first camera's frame the move is `{value}`.",
    "The answer is `{value}` mm.",
    "The translation vector is `{value}`.",
    "The second camera sits at `{value}` mm from the first.",
    "I estimate `{value}` mm.",
    "The camera's shift is `{value}`.",
    "Its motion vector is `{value}` mm.",
    "The camera went `{value}` along x, y and z.",
)

_MOVEMENT_DISTANCE_ANSWERS = (
    "The point moved `{value}` mm.",
    "It travelled about `{value}` millimetres.",
    "The distance moved is `{value}` mm.",
    "The answer is `{value}` mm.",
    "The point shifted by `{value}` mm.",
    "Its two positions are `{value}` mm apart.",
    "I estimate `{value}` mm.",
    "The point's move is `{value}` millimetres long.",
    "It went `{value}` mm between the frames.",
    "About `{value}` mm.",
)

_MOVEMENT_VECTOR_ANSWERS = (
    "The point moved by `{value}` mm.",
    "Its displacement is `{value}` millimetres.",
    "The motion vector is `{value}`.",
    "The answer is `{value}` mm.",
    "In the first camera's frame the point moved `{value}`.",
    "The point shifted by `{value}`.",
    "I estimate `{value}` mm.",
    "The point's move is `{value}` mm along x, y and z.",
    "Its change of position is `{value}`.",
    "The vector is `{value}` mm.",
)

_HEIGHT_ANSWERS = (
    "The height is `{value}` mm.",
    "It is about `{value}` mm tall.",
    "It stands `{value}` millimetres high.",
    "The answer is `{value}` mm.",
    "Its height is `{value}` mm.",
    "I estimate `{value}` mm.",
    "The object is `{value}` mm tall.",
    "From bottom to top it measures `{value}` mm.",
    "Height: `{value}` mm.",
    "About `{value}` mm.",
)

_WIDTH_ANSWERS = (
    "The width is `{value}` mm.",
    "It is about `{value}` mm wide.",
    "Its shorter side measures `{value}` millimetres.",
    "The answer is `{value}` mm.",
    "Its width is `{value}` mm.",
    "I estimate `{value}` mm.",
    "The object is `{value}` mm wide.",
    "Across its short side it measures `{value}` mm.",
    "Width: `{value}` mm.",
    "About `{value}` mm.",
)

_LENGTH_ANSWERS = (
    "The length is `{value}` mm.",
    "It is about `{value}` mm long.",
    "Its longer side measures `{value}` millimetres.",
    "The answer is `{value}` mm.",
    "Its length is `{value}` mm.",
    "I estimate `{value}` mm.",
    "The object is `{value}` mm long.",
    "From end to end it measures `{value}` mm.",
    "Length: `{value}` mm.",
    "About `{value}` mm.",
)

ANSWERS: dict[str, tuple[str, ...]] = {
    "depth_value_dot": _DEPTH_VALUE_ANSWERS,
    "depth_value_coord": _DEPTH_VALUE_ANSWERS,
    "depth_compare_dot": _DEPTH_COMPARE_DOT_ANSWERS,
    "depth_compare_coord": _DEPTH_COMPARE_COORD_ANSWERS,
    "correspondence_mcq": _CORRESPONDENCE_MCQ_ANSWERS,
    "correspondence_coord": _CORRESPONDENCE_COORD_ANSWERS,
    "camera_left_right": _LEFT_RIGHT_ANSWERS,
    "camera_up_down": _UP_DOWN_ANSWERS,
    "camera_forward_backward": _FORWARD_BACKWARD_ANSWERS,
    "camera_yaw_direction": _YAW_DIRECTION_ANSWERS,
    "camera_pitch_direction": _PITCH_DIRECTION_ANSWERS,
    "camera_yaw_degrees": _YAW_DEGREES_ANSWERS,
    "camera_pitch_degrees": _PITCH_DEGREES_ANSWERS,
    "camera_distance": _CAMERA_DISTANCE_ANSWERS,
    "camera_vector": _CAMERA_VECTOR_ANSWERS,
    "object_movement_distance_dot": _MOVEMENT_DISTANCE_ANSWERS,
    "object_movement_distance_coord": _MOVEMENT_DISTANCE_ANSWERS,
    "object_movement_vector_dot": _MOVEMENT_VECTOR_ANSWERS,
    "object_movement_vector_coord": _MOVEMENT_VECTOR_ANSWERS,
    "object_size_height": _HEIGHT_ANSWERS,
    "object_size_width": _WIDTH_ANSWERS,
    "object_size_length": _LENGTH_ANSWERS,
}

# ---------------------------------------------------------------------------------------------------
# Task descriptions: a family sentence, then a note on units or answer form where the subtask needs one.

_COORD_NOTES = (
    "Coordinates [ x , y ] go from 0 to 1000: x across the image from left to right, y down from the top.",
    ("A position is written [ x , y ], with x from 0 at the left edge to 1000 at the right edge and y from 0 at "
     "the top to 1000 at the bottom."),
    "Image positions are given as [ x , y ] on a 0 to 1000 scale of the image width and height.",
)
_MM = "Give lengths in millimetres as whole numbers."
_DEGREES = "Give angles in whole degrees, as the size of the turn."
_CAMERA_AXES = ("Give the vector as [ x , y , z ] in millimetres, in the frame of the first camera: x points right, "
                "y points down and z points forward.")
_BACKTICKS = "Put the final answer between backticks."

_DEPTH_BASES = (
    "The image shows an indoor scene. Depth is the distance from the camera along its viewing direction.",
    "Look at the picture of a room. The depth of a point is how far it lies in front of the camera.",
    "This is a photo taken inside a room. Depth means distance from the camera, measured along the way it faces.",
)
_CORRESPONDENCE_BASES = (
    "Image-1 and Image-2 show the same scene from two different places.",
    "The two images were taken of one scene from different viewpoints.",
    "Both images show the same room, seen from two camera positions.",
)
_CAMERA_BASES = (
    ("The scene does not change between the two images; only the camera moves. Describe the motion that takes "
     "the camera of Image-1 to the camera of Image-2."),
    ("Nothing in the scene moved between the shots, but the camera did. Tell how the camera moved from the "
     "first image to the second, relative to the first image."),
    ("Assume the scene stays still while the camera moves from where Image-1 was taken to where Image-2 was "
     "taken. Describe that motion as seen from the first camera."),
)
_MOVEMENT_BASES = (
    "Image-1 and Image-2 are two frames of a video. Things in the scene may move, and the camera may move too.",
    ("The two images are frames from one video, the first one earlier. Some things in the scene move between "
     "them."),
    ("These are two moments of the same scene, Image-1 first. Look at how a point on a moving thing changed "
     "place in the world."),
)
_SIZE_BASES = (
    "The images show an indoor scene with objects in it.",
    "Look at the room in the images and the objects in it.",
    "These pictures were taken in a room; each object has a height, a length and a width.",
)
_SIZE_NOTES = {
    "height": "The height is the size of an object from its bottom to its top.",
    "width": "The width is the shorter of an object's two sizes along the floor.",
    "length": "The length is the longer of an object's two sizes along the floor.",
}


def _combine(bases: Sequence[str], *notes: str | Sequence[str]) -> tuple[str, ...]:
  """Every base sentence followed by the notes (a tuple of notes gives one variant per note)."""
  variants = list(bases)
  for note in notes:
    options = (note,) if isinstance(note, str) else tuple(note)
    variants = [f"{v} {o}" for v in variants for o in options]
  return tuple(variants)


TASKS: dict[str, tuple[str, ...]] = {
    "depth_value_dot": _combine(_DEPTH_BASES, "A coloured dot marks the point.", _MM, _BACKTICKS),
    "depth_value_coord": _combine(_DEPTH_BASES, _COORD_NOTES, _MM, _BACKTICKS),
    "depth_compare_dot": _combine(_DEPTH_BASES, "Two points are marked with dots labelled A and B; answer with "
                                  "the letter of the closer one.", _BACKTICKS),
    "depth_compare_coord": _combine(_DEPTH_BASES, _COORD_NOTES, "Answer with the coordinates of the closer point.",
                                    _BACKTICKS),
    "correspondence_mcq": _combine(_CORRESPONDENCE_BASES, "A coloured dot marks a point in Image-1, and four "
                                   "points in Image-2 are labelled A, B, C and D; answer with one letter.",
                                   _BACKTICKS),
    "correspondence_coord": _combine(_CORRESPONDENCE_BASES, _COORD_NOTES, "Answer with the coordinates in Image-2.",
                                     _BACKTICKS),
    "camera_left_right": _combine(_CAMERA_BASES, "Answer left or right.", _BACKTICKS),
    "camera_up_down": _combine(_CAMERA_BASES, "Answer up or down.", _BACKTICKS),
    "camera_forward_backward": _combine(_CAMERA_BASES, "Answer forward or backward.", _BACKTICKS),
    "camera_yaw_direction": _combine(_CAMERA_BASES, "Yaw is the turn around the up direction; answer left or "
                                     "right.", _BACKTICKS),
    "camera_pitch_direction": _combine(_CAMERA_BASES, "Pitch is the up-down tilt of the view; answer up or down.",
                                       _BACKTICKS),
    "camera_yaw_degrees": _combine(_CAMERA_BASES, "Yaw is the turn around the up direction.", _DEGREES, _BACKTICKS),
    "camera_pitch_degrees": _combine(_CAMERA_BASES, "Pitch is the up-down tilt of the view.", _DEGREES,
                                     _BACKTICKS),
    "camera_distance": _combine(_CAMERA_BASES, _MM, _BACKTICKS),
    "camera_vector": _combine(_CAMERA_BASES, _CAMERA_AXES, _BACKTICKS),
    "object_movement_distance_dot": _combine(_MOVEMENT_BASES, "A coloured dot marks the point in Image-1.", _MM,
                                             _BACKTICKS),
    "object_movement_distance_coord": _combine(_MOVEMENT_BASES, _COORD_NOTES, _MM, _BACKTICKS),
    "object_movement_vector_dot": _combine(_MOVEMENT_BASES, "A coloured dot marks the point in Image-1.",
                                           _CAMERA_AXES, _BACKTICKS),
    "object_movement_vector_coord": _combine(_MOVEMENT_BASES, _COORD_NOTES, _CAMERA_AXES, _BACKTICKS),
    "object_size_height": _combine(_SIZE_BASES, _SIZE_NOTES["height"], _MM, _BACKTICKS),
    "object_size_width": _combine(_SIZE_BASES, _SIZE_NOTES["width"], _MM, _BACKTICKS),
    "object_size_length": _combine(_SIZE_BASES, _SIZE_NOTES["length"], _MM, _BACKTICKS),
}

# ---------------------------------------------------------------------------------------------------
# Rendering.


def placeholders(template: str) -> frozenset[str]:
  """The `str.format` field names of a template."""
  return frozenset(name for _, name, _, _ in string.Formatter().parse(template) if name is not None)


QUESTION_FIELDS: dict[str, frozenset[str]] = {key: placeholders(qs[0]) for key, qs in QUESTIONS.items()}

_COORD_FIELDS = frozenset({"x", "y", "x1", "y1", "x2", "y2"})
_TEXT_FIELDS = frozenset({"color", "object"})


def template_key(subtask: str) -> str:
  """The templates' key of a subtask: object movement drops its track source."""
  if subtask in QUESTIONS:
    return subtask
  if subtask.startswith("object_movement_"):
    for kind in subtasks.OBJECT_MOVEMENT_KINDS:
      if subtask.endswith("_" + kind) and len(subtask) > len("object_movement_") + len(kind) + 1:
        return f"object_movement_{kind}"
  raise ValueError(f"no templates for subtask {subtask!r}; known: {sorted(QUESTIONS)} "
                   "(object movement may also carry its source, e.g. 'object_movement_adt_vector_dot')")


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
  return options[int(rng.integers(len(options)))]


def _field_text(name: str, value) -> str:
  """A field's text, refusing values that would read wrongly in a question."""
  if name in _COORD_FIELDS:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
        or float(value) != int(value) or not 0 <= value <= 1000:
      raise ValueError(f"field {name!r} is a 0-1000 image coordinate (a whole number), got {value!r}")
    return str(int(value))
  if name in _TEXT_FIELDS:
    if not isinstance(value, str) or not value.strip() or "`" in value:
      raise ValueError(f"field {name!r} must be a non-empty word without backticks, got {value!r}")
    return value.strip()
  return str(value)


def render_question(subtask: str, rng: np.random.Generator, **fields) -> str:
  """One question of `subtask`, its template drawn by `rng`.

  `fields` must hold every name in QUESTION_FIELDS[subtask]; others are ignored (a caller may pass
  both the colour and the coordinates of a point and let the subtask use what it asks about).
  """
  key = template_key(subtask)
  wanted = QUESTION_FIELDS[key]
  missing = sorted(wanted - set(fields))
  if missing:
    raise ValueError(f"questions of {subtask!r} take the fields {sorted(wanted)}; missing {missing}")
  texts = {name: _field_text(name, fields[name]) for name in wanted}
  return _pick(rng, QUESTIONS[key]).format(**texts)


def _integer(value, what: str) -> int:
  if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
    raise ValueError(f"{what} must be a finite number, got {value!r}")
  return round(float(value))


def format_value(kind: str, value) -> str:
  """The answer text of a value: label as is; scalar an integer; vector "[ a , b , c ]"; coord "[ x , y ]"."""
  if kind == "label":
    text = str(value).strip()
    if not text or "`" in text:
      raise ValueError(f"a label must be non-empty text without backticks, got {value!r}")
    return text
  if kind == "scalar":
    return str(_integer(value, "a scalar answer"))
  if kind in ("vector", "coord"):
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
      raise ValueError(f"a {kind} answer must be a sequence of numbers, got {value!r}")
    numbers_ = [_integer(v, f"each part of a {kind} answer") for v in np.asarray(value, dtype=object).reshape(-1)]
    if kind == "coord" and len(numbers_) != 2:
      raise ValueError(f"a coord answer is [ x , y ], got {len(numbers_)} numbers: {value!r}")
    if kind == "vector" and not numbers_:
      raise ValueError("a vector answer needs at least one number")
    return "[ " + " , ".join(str(n) for n in numbers_) + " ]"
  raise ValueError(f"answer kind must be 'label', 'scalar', 'vector' or 'coord', got {kind!r}")


def render_answer(subtask: str, rng: np.random.Generator, value) -> str:
  """One answer sentence of `subtask` with `value` (formatted by the subtask's answer kind) in backticks."""
  key = template_key(subtask)
  text = format_value(subtasks.answer_kind(subtask), value)
  return _pick(rng, ANSWERS[key]).format(value=text)


def render_task(subtask: str, rng: np.random.Generator) -> str:
  """One task description of `subtask`'s family, with the units and answer form the subtask needs."""
  return _pick(rng, TASKS[template_key(subtask)])
